//! After an update: the processes still running an executable or library the update replaced
//! (as needrestart finds them: `/proc/PID/exe` or a mapping of a deleted file), each given to
//! its owner: the configured service whose PID file names it or one of its ancestors, else
//! its systemd unit (from `/proc/PID/cgroup`); owners restarted in the server's order of
//! services, each until none of its processes runs a replaced file. Processes nobody owns are
//! reported, never killed.

use std::collections::BTreeMap;
use std::time::Duration;

use mailfleet_core::Server;
use mailfleet_core::fleet::Restart;
use mailfleet_remote::{Cmd, Reach};

/// Lists, for `$1` (a package root, or empty) and the PID files `$2...`: `S\tINDEX\tPID` for
/// each PID file naming a running process, then `P\tPID\tCOMMAND\tFILE\tUNIT\tANCESTORS` for
/// each process running a replaced file (under the package root, when there is one). A
/// fixed script: the paths arrive as arguments, nothing is pasted in.
const SCAN: &str = r#"root=$1; shift
i=0
for f in "$@"; do
  pid=
  read -r pid < "$f" 2>/dev/null
  case "$pid" in ''|*[!0-9]*) ;; *) [ -d "/proc/$pid" ] && printf 'S\t%s\t%s\n' "$i" "$pid";; esac
  i=$((i+1))
done
for d in /proc/[0-9]*; do
  pid=${d#/proc/}
  exe=$(readlink "$d/exe" 2>/dev/null) || continue
  file=
  case "$exe" in "$root"/*" (deleted)") file=${exe% (deleted)};; esac
  if [ -z "$file" ]; then
    file=$(grep -E ' /[^ ]+ \(deleted\)$' "$d/maps" 2>/dev/null | grep -vE ' /(dev|memfd:|SYSV|\[)' | sed -e 's/.* \(\/[^ ]*\) (deleted)$/\1/' | grep -F "$root/" | head -n 1)
  fi
  [ -n "$file" ] || continue
  comm=$(cat "$d/comm" 2>/dev/null)
  unit=$(sed -n 's#.*/\([^/]*\.service\)$#\1#p' "$d/cgroup" 2>/dev/null | head -n 1)
  anc=; p=$pid; n=0
  while [ "$n" -lt 64 ]; do
    p=$(sed -n 's/^PPid:[[:space:]]*//p' "/proc/$p/status" 2>/dev/null)
    case "$p" in ''|0|1) break;; esac
    anc="$anc $p"; n=$((n+1))
  done
  printf 'P\t%s\t%s\t%s\t%s\t%s\n' "$pid" "$comm" "$file" "$unit" "${anc# }"
done
exit 0"#;

/// A process running a replaced file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    /// Its PID.
    pub pid: u32,
    /// Its command name.
    pub command: String,
    /// The replaced file.
    pub file: String,
    /// Its systemd unit, if it runs in one.
    pub unit: Option<String>,
    /// Its parent, the parent's parent, ... (PID 1 left out).
    pub ancestors: Vec<u32>,
}

/// Who restarts a stale process.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Owner {
    /// The server's service at this index.
    Service(usize),
    /// A systemd unit.
    Unit(String),
    /// Nobody known.
    Unknown,
}

/// What one look at a server found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Each service's running main PID (by index), where its PID file names one.
    pub mains: BTreeMap<usize, u32>,
    /// Processes running replaced files.
    pub stale: Vec<Stale>,
}

impl Scan {
    /// Reads the scan script's output.
    pub fn parse(out: &str) -> Scan {
        let mut scan = Scan::default();
        for line in out.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            match f.as_slice() {
                ["S", i, pid] => {
                    if let (Ok(i), Ok(pid)) = (i.parse(), pid.parse()) {
                        scan.mains.insert(i, pid);
                    }
                }
                ["P", pid, command, file, unit, ancestors] => {
                    let Ok(pid) = pid.parse() else { continue };
                    scan.stale.push(Stale {
                        pid,
                        command: (*command).to_string(),
                        file: (*file).to_string(),
                        unit: (!unit.is_empty()).then(|| (*unit).to_string()),
                        ancestors: ancestors
                            .split_whitespace()
                            .filter_map(|a| a.parse().ok())
                            .collect(),
                    });
                }
                _ => {}
            }
        }
        scan
    }

    /// Who restarts `s`: the first service (in the server's order) whose main process is it
    /// or an ancestor of it, else its unit.
    pub fn owner(&self, s: &Stale) -> Owner {
        let service = self
            .mains
            .iter()
            .find(|(_, main)| **main == s.pid || s.ancestors.contains(main))
            .map(|(i, _)| *i);
        match (service, &s.unit) {
            (Some(i), _) => Owner::Service(i),
            (None, Some(u)) => Owner::Unit(u.clone()),
            (None, None) => Owner::Unknown,
        }
    }

    /// The stale processes by owner, owners in restart order.
    pub fn by_owner(&self) -> BTreeMap<Owner, Vec<&Stale>> {
        let mut all: BTreeMap<Owner, Vec<&Stale>> = BTreeMap::new();
        for s in &self.stale {
            all.entry(self.owner(s)).or_default().push(s);
        }
        all
    }
}

/// Looks at `server` once.
pub async fn scan(reach: &Reach, server: &Server) -> Result<Scan, String> {
    let mut argv = vec![
        "sh".to_string(),
        "-c".into(),
        SCAN.into(),
        "mailfleet-stale".into(),
        server
            .package_root
            .as_ref()
            .map(|r| r.display().to_string())
            .unwrap_or_default(),
    ];
    argv.extend(
        server
            .services
            .iter()
            .map(|s| s.pid_file.display().to_string()),
    );
    let cmd = Cmd::new(argv).deadline(Duration::from_secs(60));
    let out = reach
        .check(&server.name, &server.access, &cmd)
        .await
        .map_err(|e| format!("looking for processes running replaced files: {e}"))?;
    Ok(Scan::parse(&out.stdout_text()))
}

fn list(procs: &[&Stale]) -> String {
    procs
        .iter()
        .map(|s| format!("{} {} ({})", s.pid, s.command, s.file))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Owner {
    fn name<'a>(&'a self, server: &'a Server) -> &'a str {
        match self {
            Owner::Service(i) => server.services.get(*i).map_or("?", |s| s.name.as_str()),
            Owner::Unit(u) => u,
            Owner::Unknown => "nobody",
        }
    }
}

/// Runs `"$@"` with its output in a file, printed once it exits: a daemon it starts keeps
/// the descriptors it inherited, and a command whose output pipes stay open never ends over
/// SSH.
const DETACHED: &str = r#"out=$(mktemp) || exit 125
"$@" </dev/null >"$out" 2>&1
rc=$?
cat "$out" >&2
rm -f "$out"
exit $rc"#;

async fn run_cmd(
    reach: &Reach,
    server: &Server,
    argv: &[String],
    timeout: Duration,
) -> Result<(), String> {
    let mut wrapped = vec![
        "sh".to_string(),
        "-c".into(),
        DETACHED.into(),
        "mailfleet-restart".into(),
    ];
    wrapped.extend(argv.iter().cloned());
    let cmd = Cmd::new(wrapped).deadline(timeout);
    reach
        .check(&server.name, &server.access, &cmd)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Runs `restart`; for a stop and a start, waits between them until `old_main` has exited.
async fn run_restart(
    reach: &Reach,
    server: &Server,
    restart: &Restart,
    old_main: Option<u32>,
    timeout: Duration,
) -> Result<(), String> {
    match restart {
        Restart::Commands(all) => {
            for argv in all {
                run_cmd(reach, server, argv, timeout).await?;
            }
        }
        Restart::StopStart { stop, start } => {
            stop_and_wait(reach, server, stop, old_main, timeout).await?;
            run_cmd(reach, server, start, timeout).await?;
        }
    }
    Ok(())
}

/// Runs `stop`, then waits until `old_main` (the service's main process) has exited.
pub(crate) async fn stop_and_wait(
    reach: &Reach,
    server: &Server,
    stop: &[String],
    old_main: Option<u32>,
    timeout: Duration,
) -> Result<(), String> {
    run_cmd(reach, server, stop, timeout).await?;
    let Some(pid) = old_main else {
        return Ok(());
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let alive = Cmd::new(vec![
        "test".to_string(),
        "-d".into(),
        format!("/proc/{pid}"),
    ])
    .deadline(Duration::from_secs(30));
    loop {
        let out = reach
            .run(&server.name, &server.access, &alive)
            .await
            .map_err(|e| e.to_string())?;
        if !out.success() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "PID {pid} still running {} s after the stop",
                timeout.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Restarts what on `server` runs a replaced file; what it did, or why the run must halt (a
/// restart command failed, or the service still runs a replaced file after `timeout`).
pub async fn restart_stale(
    reach: &Reach,
    server: &Server,
    timeout: Duration,
) -> Result<String, String> {
    let first = scan(reach, server).await?;
    let mut text = String::new();
    if first.stale.is_empty() {
        text.push_str("no process runs a replaced file\n");
    }
    for (owner, procs) in first.by_owner() {
        let restart = match &owner {
            Owner::Service(i) => match server.services.get(*i) {
                Some(s) => s.restart.clone(),
                None => continue,
            },
            Owner::Unit(u) => {
                Restart::Commands(vec![vec!["systemctl".into(), "restart".into(), u.clone()]])
            }
            Owner::Unknown => {
                text.push_str(&format!(
                    "not restarted (no service in the config or systemd unit owns them): {}\n",
                    list(&procs)
                ));
                continue;
            }
        };
        let name = owner.name(server).to_string();
        let old_main = match owner {
            Owner::Service(i) => first.mains.get(&i).copied(),
            _ => None,
        };
        run_restart(reach, server, &restart, old_main, timeout)
            .await
            .map_err(|e| format!("restart of {name} on {}: {e}", server.name))?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let now = scan(reach, server).await?;
            let left: Vec<&Stale> = now.stale.iter().filter(|s| now.owner(s) == owner).collect();
            let running = match owner {
                Owner::Service(i) => now.mains.get(&i).copied(),
                _ => None,
            };
            let up = !matches!(owner, Owner::Service(_)) || running.is_some();
            if left.is_empty() && up {
                let main = running
                    .map(|p| format!(", now PID {p}"))
                    .unwrap_or_default();
                text.push_str(&format!(
                    "restarted {name}{main}: it ran replaced files in {}\n",
                    list(&procs)
                ));
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(if up {
                    format!(
                        "restart of {name} on {}: still running replaced files after {} s: {}",
                        server.name,
                        timeout.as_secs(),
                        list(&left)
                    )
                } else {
                    format!(
                        "restart of {name} on {}: its PID file names no running process {} s after the restart",
                        server.name,
                        timeout.as_secs()
                    )
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    start_stopped(reach, server, timeout, &mut text).await?;
    Ok(text)
}

/// Starts each service of `server` whose PID file names no running process (it died in the
/// update, or a killed run stopped it and did not start it again): the update leaves every
/// service running, or the run halts.
async fn start_stopped(
    reach: &Reach,
    server: &Server,
    timeout: Duration,
    text: &mut String,
) -> Result<(), String> {
    let now = scan(reach, server).await?;
    for (i, service) in server.services.iter().enumerate() {
        if now.mains.contains_key(&i) {
            continue;
        }
        let fail = |e: String| format!("start of {} on {}: {e}", service.name, server.name);
        match &service.restart {
            Restart::StopStart { start, .. } => run_cmd(reach, server, start, timeout).await,
            commands => run_restart(reach, server, commands, None, timeout).await,
        }
        .map_err(fail)?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(pid) = scan(reach, server).await?.mains.get(&i) {
                text.push_str(&format!(
                    "started {} (stopped for the update, or not running after it), now PID {pid}\n",
                    service.name
                ));
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(fail(format!(
                    "its PID file names no running process {} s after the start",
                    timeout.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_processes_go_to_the_service_that_started_them_else_their_unit() {
        let out = "S\t0\t100\nS\t1\t200\nP\t100\tdovecot\t/r/usr/sbin/dovecot\t\t\nP\t150\timap\t/r/lib/libdovecot.so\tdovecot.service\t120 100\nP\t300\tcron\t/r/lib/libc.so.6\tcron.service\t\nP\t400\tbash\t/r/lib/libc.so.6\t\t399\nP\tx\tbad\nnoise\n";
        let scan = Scan::parse(out);
        assert_eq!(scan.mains.len(), 2);
        assert_eq!(scan.stale.len(), 4);
        assert_eq!(scan.stale[1].ancestors, [120, 100]);
        let owners: Vec<Owner> = scan.stale.iter().map(|s| scan.owner(s)).collect();
        assert_eq!(
            owners,
            [
                Owner::Service(0),
                Owner::Service(0),
                Owner::Unit("cron.service".into()),
                Owner::Unknown
            ]
        );
        let by = scan.by_owner();
        assert_eq!(by.keys().next(), Some(&Owner::Service(0)));
        assert_eq!(by[&Owner::Service(0)].len(), 2);
    }
}

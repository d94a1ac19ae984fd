//! The [`Snapshot`] of a server read on the server, through its access: one fixed shell script
//! per round (over the server's multiplexed SSH connection) prints its `/proc` files twice
//! and each watched mount's `stat --file-system`. The hung-mount guard runs there too: each
//! `stat` runs in the background, the script waits for them until the deadline and reports
//! the rest as not answering; a `stat` still stuck from an earlier round (its PID and start
//! kept in `$TMPDIR/mailfleet-stuck-UID`, running longer than the deadline) is not started
//! again.

use std::time::Duration;

use mailfleet_core::Server;
use mailfleet_remote::{Cmd, Reach};

use crate::host::{Limits, Mount, STAT_FORMAT, Snapshot, judge, watched_patterns};
use crate::outcome::{Outcome, State, Step};

/// The script. Arguments: the deadline in tenths of a second, the `stat` format, then the
/// watched `FS=POINT` patterns. The patterns are matched by `case`, never run.
const SCRIPT: &str = r#"
set -u
tenths=$1; format=$2; shift 2
d=$(mktemp -d) || exit 70
s="${TMPDIR:-/tmp}/mailfleet-stuck-$(id -u)"
mkdir -p "$s" || exit 70
trap 'rm -rf "$d"' EXIT
now() { awk '{ printf "%d\n", $1 * 100 }' /proc/uptime; }
sample() { echo "== uptime$1"; cat /proc/uptime; echo "== stat$1"; cat /proc/stat; echo "== diskstats$1"; cat /proc/diskstats; }
sample 0
n=0; seen=' '
while read -r dev point fs rest; do
  ok=
  for rule in "$@"; do case "$fs=$point" in $rule) ok=1;; esac; done
  [ -n "$ok" ] || continue
  case "$seen" in *" $point "*) continue;; esac
  seen="$seen$point "
  n=$((n+1))
  printf '%s\n' "$point" > "$d/$n.point"
  key=$(printf '%s' "$point" | cksum | cut -d' ' -f1)
  # Stuck: a stat of this mount still running past the deadline. One younger than that is
  # another probe's at work (two probes at once), not stuck: run one of our own.
  # The marker may go at any moment (that stat ending): nothing here may fail on that.
  # Ages in hundredths from /proc/uptime: whole seconds (a file's mtime) took a stat 2.9 s
  # old for 2 s, under a 2 s deadline not stuck yet. A marker without its start is stuck.
  if read -r pid since < "$s/$key" 2>/dev/null && kill -0 "$pid" 2>/dev/null; then
    case "${since:-}" in ''|*[!0-9]*) since=0;; esac
    if [ $(( $(now) - since )) -ge $(( tenths * 10 )) ]; then
      echo still > "$d/$n.rc"; continue
    fi
  fi
  ( stat --file-system --format="$format" -- "$(printf '%b' "$point")" > "$d/$n.out" 2>&1
    echo $? > "$d/$n.tmp" && mv "$d/$n.tmp" "$d/$n.rc"; rm -f "$s/$key" ) < /dev/null > /dev/null 2>&1 &
  echo "$! $(now)" > "$s/$key"
done < /proc/self/mounts
sleep 0.2
i=0
while [ "$i" -lt "$tenths" ]; do
  all=1; k=1
  while [ "$k" -le "$n" ]; do [ -f "$d/$k.rc" ] || { all=; break; }; k=$((k+1)); done
  [ -n "$all" ] && break
  sleep 0.1; i=$((i+1))
done
sample 1
echo "== meminfo"; cat /proc/meminfo
echo "== loadavg"; cat /proc/loadavg
echo "== netdev"; cat /proc/net/dev
echo "== netstat"; cat /proc/net/netstat
echo "== ncpu"; getconf _NPROCESSORS_ONLN
k=1
while [ "$k" -le "$n" ]; do
  echo "== mount"; cat "$d/$k.point"
  if [ -f "$d/$k.rc" ]; then
    r=$(cat "$d/$k.rc"); echo "rc $r"; [ "$r" = still ] || cat "$d/$k.out"
  else
    echo "rc timeout"
  fi
  k=$((k+1))
done
"#;

/// Extra time the whole command gets beyond the mounts' deadline: the samples, the SSH round
/// trip, and a connection made first.
const SLACK: Duration = Duration::from_secs(5);

/// Reads `server` through its access.
pub async fn snapshot(
    reach: &Reach,
    server: &Server,
    timeout: Duration,
) -> Result<Snapshot, String> {
    let tenths = (timeout.as_millis() / 100).max(1).to_string();
    let mut argv: Vec<String> = vec![
        "sh".into(),
        "-c".into(),
        SCRIPT.into(),
        "mailfleet-host".into(),
        tenths,
        STAT_FORMAT.into(),
    ];
    argv.extend(watched_patterns());
    let cmd = Cmd::new(argv).deadline(timeout + SLACK);
    let out = reach
        .check(&server.name, &server.access, &cmd)
        .await
        .map_err(|e| e.to_string())?;
    parse(&out.stdout_text(), timeout)
}

/// The script's output as a snapshot.
pub fn parse(text: &str, timeout: Duration) -> Result<Snapshot, String> {
    let mut sections: Vec<(&str, String)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("== ") {
            sections.push((name, String::new()));
        } else if let Some((_, body)) = sections.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    let get = |name: &str| {
        sections
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, b)| b.clone())
            .ok_or_else(|| format!("the host script printed no {name} section"))
    };
    let uptime = |name: &str| -> Result<f64, String> {
        get(name)?
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| format!("unreadable {name}"))
    };
    let interval_ms = (uptime("uptime1")? - uptime("uptime0")?).max(0.0) * 1000.0;
    let ncpu = get("ncpu")?
        .trim()
        .parse()
        .map_err(|_| "unreadable CPU count".to_string())?;
    let wait_ms = timeout.as_secs_f64() * 1000.0;
    let mounts = sections
        .iter()
        .filter(|(n, _)| *n == "mount")
        .map(|(_, body)| {
            let mut lines = body.lines();
            let point = lines.next().unwrap_or("").replace("\\040", " ");
            let rc = lines.next().unwrap_or("").trim_start_matches("rc ").trim();
            let rest: String = lines.collect::<Vec<_>>().join("\n");
            let (stat, ms) = match rc {
                "0" => (Ok(rest), interval_ms),
                "timeout" => (
                    Err(format!(
                        "no answer within {:.1} s (hung mount?)",
                        timeout.as_secs_f64()
                    )),
                    wait_ms,
                ),
                "still" => (
                    Err("still not answering (the previous check is still stuck)".into()),
                    0.0,
                ),
                _ => (Err(rest.trim().to_string()), interval_ms),
            };
            Mount { point, stat, ms }
        })
        .collect();
    Ok(Snapshot {
        stat: [get("stat0")?, get("stat1")?],
        diskstats: [get("diskstats0")?, get("diskstats1")?],
        interval_ms,
        meminfo: get("meminfo")?,
        loadavg: get("loadavg")?,
        net_dev: get("netdev")?,
        netstat: get("netstat")?,
        ncpu,
        mounts,
    })
}

/// Every host check of `server`, read through its access; a server that cannot be read gives
/// one CRITICAL `resources` outcome naming why.
pub async fn check(
    reach: &Reach,
    server: &Server,
    limits: Limits,
    timeout: Duration,
) -> Vec<Outcome> {
    let started = std::time::Instant::now();
    match snapshot(reach, server, timeout).await {
        Ok(snap) => judge(&server.name, &snap, limits),
        Err(e) => {
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            vec![Outcome {
                server: server.name.clone(),
                check: "resources".into(),
                state: State::Critical,
                elapsed_ms: ms,
                steps: vec![Step { name: "read", ms }],
                message: e,
                value: None,
            }]
        }
    }
}

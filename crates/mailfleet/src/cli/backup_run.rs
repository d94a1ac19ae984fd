//! `mailfleet backup run`: pre/post commands, the run in a blocking thread with the target
//! behind its worker, the status file, the alarm and the exit code.

use std::os::fd::AsFd as _;
use std::process::ExitCode;

use anyhow::bail;
use mailfleet_backup::BackupError;
use mailfleet_backup::repo::Repository;
use mailfleet_backup::run::{RunReport, Source};
use mailfleet_backup::snapshot::Snapshot;
use mailfleet_core::backup_status::BackupRun;
use mailfleet_core::directory::Filter;
use mailfleet_core::{Config, Role};
use mailfleet_probe::State;
use mailfleet_probe::alarm::{Kind, Notification};

use super::backup::guarded;
use super::{Context, print_json};

/// Puts this process in the idle I/O class (best effort): the stores' users come first.
fn lower_io_priority(pid: u32) {
    let r = std::process::Command::new("ionice")
        .args(["-c", "3", "-p", &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    if !matches!(r, Ok(s) if s.success()) {
        tracing::info!("ionice -c 3 failed: the backup runs at normal I/O priority");
    }
}

/// Runs a `pre`/`post` command with `sh -c` in its own process group, killed at the deadline;
/// its output goes to stderr.
fn shell(command: &str, timeout: std::time::Duration) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| e.to_string())?;
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(stderr))
        .process_group(0)
        .spawn()
        .map_err(|e| format!("{command:?}: {e}"))?;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => return Ok(()),
            Ok(Some(st)) => return Err(format!("{command:?} failed ({st})")),
            Ok(None) if std::time::Instant::now() >= deadline => {
                let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
                let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
                return Err(format!(
                    "{command:?} did not finish within {} s and was killed",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(20)),
            Err(e) => return Err(format!("{command:?}: {e}")),
        }
    }
}

async fn sources(
    config: &Config,
    servers: &[String],
    accounts: &[String],
) -> anyhow::Result<Vec<Source>> {
    for s in servers {
        match config.fleet.server(s) {
            Some(srv) if srv.has_role(Role::Mailbox) => {}
            Some(_) => bail!("--server {s}: not a mailbox store"),
            None => bail!("--server {s}: no such server in the config"),
        }
    }
    let directory = mailfleet_core::directory::open(&config.directory).await?;
    let all = directory.list(&Filter::default()).await?;
    let mut out = Vec::new();
    for a in &all {
        let address = a.address.to_string();
        if (!servers.is_empty() && !servers.contains(&a.server))
            || (!accounts.is_empty() && !accounts.contains(&address))
        {
            continue;
        }
        let Some(maildir) = config
            .fleet
            .server(&a.server)
            .and_then(|s| s.maildir_of(&a.address))
        else {
            tracing::warn!("{address}: its store {} has no maildir_root here", a.server);
            continue;
        };
        out.push(Source {
            server: a.server.clone(),
            address,
            maildir,
        });
    }
    for want in accounts {
        if !out.iter().any(|s| &s.address == want) {
            bail!("--account {want}: not in the directory (or not on the stores asked for)");
        }
    }
    Ok(out)
}

fn print_report(r: &RunReport) {
    println!(
        "snapshot {}: {} accounts, {} messages ({} bytes); read {} new or changed ({} bytes), {} unchanged, {} vanished during the run",
        r.snapshot,
        r.accounts,
        r.messages,
        r.bytes,
        r.read_messages,
        r.read_bytes,
        r.unchanged_messages,
        r.vanished
    );
    println!(
        "stored {} new blobs, {} bytes ({} already there); {:.1}x less than read; {:.2} s",
        r.stored.new_blobs,
        r.stored.stored_bytes,
        r.stored.reused_blobs,
        r.dedup_ratio(),
        r.elapsed_secs
    );
}

/// How a run ended, for the status file, the alarm and the exit code.
enum Ended {
    Ok(Box<(Snapshot, RunReport)>),
    Failed(String),
    /// The target did not answer: exit code 2.
    Aborted(String),
    /// `pre` failed: exit code 3.
    Skipped(String),
}

impl Ended {
    fn result(&self) -> &'static str {
        match self {
            Ended::Ok(_) => "ok",
            Ended::Failed(_) => "failed",
            Ended::Aborted(_) => "aborted",
            Ended::Skipped(_) => "skipped",
        }
    }

    fn error(&self) -> Option<&str> {
        match self {
            Ended::Ok(_) => None,
            Ended::Failed(e) | Ended::Aborted(e) | Ended::Skipped(e) => Some(e),
        }
    }
}

fn backup_blocking(config: &Config, sources: &[Source], show: bool) -> Ended {
    let target = match guarded(config) {
        Ok(t) => t,
        Err(e) => return Ended::Failed(format!("{e:#}")),
    };
    // Before anything is read: a target that does not answer aborts the run at once.
    match mailfleet_backup::worker::check_alive(&target) {
        Ok(()) => {}
        Err(e @ (BackupError::Hung { .. } | BackupError::Target { .. })) => {
            return Ended::Aborted(format!("the backup target does not answer: {e}"));
        }
        Err(e) => return Ended::Failed(e.to_string()),
    }
    let keys = match super::backup::keys(config) {
        Ok(k) => k,
        Err(e) => return Ended::Failed(format!("{e:#}")),
    };
    let repo = match Repository::open_or_init(Box::new(target), keys) {
        Ok(r) => r,
        Err(e @ BackupError::Hung { .. }) => return Ended::Aborted(e.to_string()),
        Err(e) => return Ended::Failed(e.to_string()),
    };
    let expected: Option<u64> = repo.snapshots().ok().and_then(|s| {
        s.last()
            .map(|l| l.accounts.iter().map(|a| a.messages).sum())
    });
    let bar = show.then(|| super::progress::bar(expected));
    let mut progress = |r: &RunReport| {
        if let Some(b) = &bar {
            super::progress::update(b, r);
        }
    };
    let result = mailfleet_backup::run::run(&repo, sources, &mut progress);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    match result {
        Ok(done) => Ended::Ok(Box::new(done)),
        Err(e @ BackupError::Hung { .. }) => Ended::Aborted(e.to_string()),
        Err(e) => Ended::Failed(e.to_string()),
    }
}

pub(crate) async fn run_backup(
    config: &Config,
    ctx: &Context,
    servers: &[String],
    accounts: &[String],
) -> anyhow::Result<ExitCode> {
    let started = chrono::Utc::now();
    let sources = sources(config, servers, accounts).await?;
    lower_io_priority(std::process::id());
    let b = &config.backup;
    let pre = match &b.pre {
        Some(cmd) => shell(cmd, b.command_timeout),
        None => Ok(()),
    };
    let ended = match pre {
        Err(e) => Ended::Skipped(format!("pre command: {e}; backup not attempted")),
        Ok(()) => {
            let (cfg, srcs) = (config.clone(), sources.clone());
            let show = !ctx.json && std::io::IsTerminal::is_terminal(&std::io::stderr());
            let ended = tokio::task::spawn_blocking(move || backup_blocking(&cfg, &srcs, show))
                .await
                .unwrap_or_else(|e| Ended::Failed(format!("the backup thread failed: {e}")));
            if let Some(cmd) = &b.post
                && let Err(e) = shell(cmd, b.command_timeout)
            {
                tracing::error!("post command: {e}");
            }
            ended
        }
    };
    let finished = chrono::Utc::now();
    let mut stores: Vec<&str> = sources.iter().map(|s| s.server.as_str()).collect();
    stores.sort_unstable();
    stores.dedup();
    for name in &stores {
        let Some(path) = config
            .fleet
            .server(name)
            .and_then(|s| s.backup_status.clone())
        else {
            continue;
        };
        let (messages, bytes) = match &ended {
            Ended::Ok(done) => (
                done.0
                    .accounts
                    .iter()
                    .filter(|a| a.server == *name)
                    .map(|a| a.messages)
                    .sum(),
                done.1.stored.stored_bytes,
            ),
            _ => (0, 0),
        };
        let run = BackupRun {
            started,
            finished: Some(finished),
            result: ended.result().into(),
            messages,
            bytes,
            error: ended.error().map(str::to_string),
        };
        // The status may sit on the hung target's machine too: never let it stop the exit.
        if let Err(e) = mailfleet_backup::run::write_status(&path, run) {
            tracing::error!("writing the backup status of {name}: {e}");
        }
    }
    if let Some(e) = ended.error() {
        let n = Notification {
            kind: Kind::Problem,
            server: stores.first().map_or("backup", |s| s).to_string(),
            check: "backup".into(),
            state: State::Critical,
            message: format!("backup {}: {e}", ended.result()),
        };
        mailfleet_probe::notify::send(config, &n).await;
    }
    match ended {
        Ended::Ok(done) => {
            if ctx.json {
                print_json(&done.1)?;
            } else {
                print_report(&done.1);
            }
            Ok(ExitCode::SUCCESS)
        }
        Ended::Failed(e) => bail!("backup failed: {e}"),
        Ended::Aborted(e) => {
            eprintln!("mailfleet: backup aborted: {e}");
            Ok(ExitCode::from(2))
        }
        Ended::Skipped(e) => {
            eprintln!("mailfleet: backup skipped: {e}");
            Ok(ExitCode::from(3))
        }
    }
}

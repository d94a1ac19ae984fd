//! `backup run` as a job: the accounts to read, the `pre` and `post` hooks, the run on a
//! thread of its own in the idle I/O class with the target behind its worker, the status
//! file of each store, the alarm, and how it ended.

use std::collections::HashMap;
use std::os::fd::AsFd as _;
use std::time::{Duration, Instant};

use mailfleet_core::backup_status::BackupRun;
use mailfleet_core::directory::Filter;
use mailfleet_core::{Config, Role};
use mailfleet_notify::{Kind, Notification, Notifier, State};
use serde::{Deserialize, Serialize};

use crate::error::BackupError;
use crate::repo::Repository;
use crate::run::{RunReport, Source};
use crate::snapshot::Snapshot;

/// Which accounts to back up (all when both are empty).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Only the accounts on these stores.
    pub servers: Vec<String>,
    /// Only these accounts.
    pub accounts: Vec<String>,
}

/// Told how a run goes, for a progress bar.
pub trait Progress: Send {
    /// The run starts; the previous snapshot held this many messages.
    fn start(&mut self, expected_messages: Option<u64>);
    /// Counts so far.
    fn update(&mut self, report: &RunReport);
    /// The run ended.
    fn finish(&mut self);
}

/// How a run ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum Ended {
    /// A snapshot was written.
    Ok(Box<RunReport>),
    /// The run failed (the message says why); nothing was lost.
    Failed {
        /// Why.
        error: String,
    },
    /// The target did not answer in time: the run was given up.
    Aborted {
        /// Why.
        error: String,
    },
    /// The `pre` hook failed: nothing was attempted.
    Skipped {
        /// Why.
        error: String,
    },
}

impl Ended {
    /// `ok`, `failed`, `aborted` or `skipped`, as the status file records it.
    pub fn result(&self) -> &'static str {
        match self {
            Ended::Ok(_) => "ok",
            Ended::Failed { .. } => "failed",
            Ended::Aborted { .. } => "aborted",
            Ended::Skipped { .. } => "skipped",
        }
    }

    /// How bad the ending is, for picking the worst of several runs: a failure, then a
    /// target that did not answer, then a skipped run, then a good one.
    pub fn severity(&self) -> u8 {
        match self {
            Ended::Ok(_) => 0,
            Ended::Skipped { .. } => 1,
            Ended::Aborted { .. } => 2,
            Ended::Failed { .. } => 3,
        }
    }

    /// Why it did not end well.
    pub fn error(&self) -> Option<&str> {
        match self {
            Ended::Ok(_) => None,
            Ended::Failed { error } | Ended::Aborted { error } | Ended::Skipped { error } => {
                Some(error)
            }
        }
    }

    fn from_error(e: BackupError) -> Ended {
        match e {
            e @ BackupError::Hung { .. } => Ended::Aborted {
                error: e.to_string(),
            },
            e => Ended::Failed {
                error: e.to_string(),
            },
        }
    }
}

/// The accounts to read, from the directory and the stores' `maildir_root`.
async fn sources(config: &Config, options: &RunOptions) -> Result<Vec<Source>, BackupError> {
    for s in &options.servers {
        match config.fleet.server(s) {
            Some(srv) if srv.has_role(Role::Mailbox) => {}
            Some(_) => {
                return Err(BackupError::Usage(format!(
                    "--server {s}: not a mailbox store"
                )));
            }
            None => {
                return Err(BackupError::Usage(format!(
                    "--server {s}: no such server in the config"
                )));
            }
        }
    }
    let directory = mailfleet_core::directory::open(&config.directory).await?;
    let all = directory.list(&Filter::default()).await?;
    let mut out = Vec::new();
    for a in &all {
        let address = a.address.to_string();
        if (!options.servers.is_empty() && !options.servers.contains(&a.server))
            || (!options.accounts.is_empty() && !options.accounts.contains(&address))
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
    for want in &options.accounts {
        if !out.iter().any(|s| &s.address == want) {
            return Err(BackupError::Usage(format!(
                "--account {want}: not in the directory (or not on the stores asked for)"
            )));
        }
    }
    Ok(out)
}

/// Runs a `pre`/`post` hook with `sh -c` in its own process group, killed at the deadline;
/// its output goes to stderr.
fn hook(command: &str, timeout: Duration) -> Result<(), String> {
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
    match mailfleet_core::child::wait_until(&mut child, Instant::now() + timeout) {
        Ok(Some(st)) if st.success() => Ok(()),
        Ok(Some(st)) => Err(format!("{command:?} failed ({st})")),
        Ok(None) => {
            let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            Err(format!(
                "{command:?} did not finish within {} s and was killed",
                timeout.as_secs()
            ))
        }
        Err(e) => Err(format!("{command:?}: {e}")),
    }
}

/// The run itself: target check, repository, snapshot. On the backup thread.
fn backup(
    config: &Config,
    sources: &[Source],
    progress: &mut Option<Box<dyn Progress>>,
) -> Result<(Snapshot, RunReport), Ended> {
    let target = super::open::guarded(config).map_err(Ended::from_error)?;
    // Before anything is read: a target that does not answer aborts the run at once.
    match crate::worker::check_alive(&target) {
        Ok(()) => {}
        Err(e @ (BackupError::Hung { .. } | BackupError::Target { .. })) => {
            return Err(Ended::Aborted {
                error: format!("the backup target does not answer: {e}"),
            });
        }
        Err(e) => return Err(Ended::from_error(e)),
    }
    let keys = super::open::keys(config).map_err(Ended::from_error)?;
    let cache = config.data_dir.join("backup-cache");
    let repo =
        Repository::open_for_backup(Box::new(target), keys, &cache).map_err(Ended::from_error)?;
    let expected: Option<u64> = repo.snapshots().ok().and_then(|s| {
        s.last()
            .map(|l| l.accounts.iter().map(|a| a.messages).sum())
    });
    if let Some(p) = progress.as_mut() {
        p.start(expected);
    }
    let mut update = |r: &RunReport| {
        if let Some(p) = progress.as_mut() {
            p.update(r);
        }
    };
    let result = crate::run::run(&repo, sources, &mut update);
    if let Some(p) = progress.as_mut() {
        p.finish();
    }
    result.map_err(Ended::from_error)
}

/// Messages per store in a snapshot.
type PerStore = HashMap<String, u64>;

/// Hooks around the run, all on the backup thread.
fn hooked(
    config: &Config,
    sources: &[Source],
    mut progress: Option<Box<dyn Progress>>,
) -> (Ended, PerStore) {
    // The idle I/O class for this thread and the workers and target process it starts.
    crate::ioprio::idle_for_this_thread();
    let b = &config.backup;
    if let Some(cmd) = &b.pre
        && let Err(e) = hook(cmd, b.command_timeout)
    {
        let error = format!("pre command: {e}; backup not attempted");
        return (Ended::Skipped { error }, PerStore::new());
    }
    let (ended, per_store) = match backup(config, sources, &mut progress) {
        Ok((snapshot, report)) => {
            let mut per_store = PerStore::new();
            for a in &snapshot.accounts {
                *per_store.entry(a.server.clone()).or_default() += a.messages;
            }
            (Ended::Ok(Box::new(report)), per_store)
        }
        Err(ended) => (ended, PerStore::new()),
    };
    if let Some(cmd) = &b.post
        && let Err(e) = hook(cmd, b.command_timeout)
    {
        tracing::error!("post command: {e}");
    }
    (ended, per_store)
}

/// Records the run in each store's `backup_status` file.
fn write_statuses(
    config: &Config,
    sources: &[Source],
    (ended, per_store): &(Ended, PerStore),
    started: chrono::DateTime<chrono::Utc>,
) -> Vec<String> {
    let finished = chrono::Utc::now();
    let mut stores: Vec<String> = sources.iter().map(|s| s.server.clone()).collect();
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
        let (messages, bytes) = match ended {
            Ended::Ok(r) => (
                per_store.get(name).copied().unwrap_or(0),
                r.stored.stored_bytes,
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
        if let Err(e) = crate::run::write_status(&path, run) {
            tracing::error!("writing the backup status of {name}: {e}");
        }
    }
    stores
}

/// A backup run as `backup run` and the daemon's schedule do it: the hooks, the run, the
/// status files, an alarm when it did not end well.
pub async fn run(
    config: &Config,
    options: &RunOptions,
    progress: Option<Box<dyn Progress>>,
) -> Result<Ended, BackupError> {
    let started = chrono::Utc::now();
    let sources = sources(config, options).await?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (cfg, srcs) = (config.clone(), sources.clone());
    // A thread of its own: its I/O class must not stay on a pooled runtime thread.
    std::thread::Builder::new()
        .name("backup".into())
        .spawn(move || {
            let _ = tx.send(hooked(&cfg, &srcs, progress));
        })
        .map_err(|e| BackupError::Format(format!("starting the backup thread: {e}")))?;
    let done = rx.await.unwrap_or_else(|_| {
        let error = "the backup thread ended without a result".into();
        (Ended::Failed { error }, PerStore::new())
    });
    let stores = write_statuses(config, &sources, &done, started);
    let ended = done.0;
    if let Some(e) = ended.error() {
        let n = Notification {
            kind: Kind::Problem,
            server: stores.first().map_or("backup", String::as_str).to_string(),
            check: "backup".into(),
            state: State::Critical,
            message: format!("backup {}: {e}", ended.result()),
        };
        Notifier::new(config).send(&n).await;
    }
    Ok(ended)
}

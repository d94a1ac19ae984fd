//! `backup run` where the Maildirs are: a store reached over SSH is backed up by mailfleet run
//! on the store itself through its access (`[backup] remote_mailfleet`, `--config
//! [backup] remote_config`, `backup run --here --server STORE`), writing to the repository
//! every store reaches (a shared mount, S3), and reporting back as JSON. Stores this machine
//! reaches locally are backed up here in one run, as before.
//!
//! The binary gets there as the package puts it on every server (`/usr/bin/mailfleet`,
//! config in `/etc/mailfleet`); unset, the same paths as here are used, which is what the
//! demo fleet on one machine has.

use std::path::PathBuf;
use std::time::Duration;

use mailfleet_core::{Config, Role, Server};
use mailfleet_remote::{Access, Cmd, Reach};
use serde::Serialize;

use super::job::{Ended, Progress, RunOptions};
use crate::error::BackupError;

/// A run on the stores, each part with where it ran.
#[derive(Debug, Clone, Serialize)]
pub struct StoreRun {
    /// The stores this part backed up.
    pub stores: Vec<String>,
    /// `local`, or `ssh user@host:port` of the store it ran on.
    pub ran_on: String,
    /// How it ended.
    #[serde(flatten)]
    pub ended: Ended,
}

/// Whether a run backs up each SSH-reached store on the store itself ([`run`]) rather than
/// reading every store's Maildirs from here in one run: unless asked to run here, as
/// `[backup] run_on_stores` says.
pub fn on_stores(config: &Config, here: bool) -> bool {
    !here && config.backup.run_on_stores
}

/// How long a run on a store may take before its SSH command is given up. The run there
/// has its own deadlines on the target; this only bounds a connection gone silent.
const ON_STORE_DEADLINE: Duration = Duration::from_secs(12 * 3600);

/// The stores asked for (all mailbox stores when none is named).
fn stores<'a>(config: &'a Config, options: &RunOptions) -> Result<Vec<&'a Server>, BackupError> {
    if options.servers.is_empty() {
        return Ok(config.fleet.with_role(Role::Mailbox).collect());
    }
    options
        .servers
        .iter()
        .map(|s| match config.fleet.server(s) {
            Some(srv) if srv.has_role(Role::Mailbox) => Ok(srv),
            Some(_) => Err(BackupError::Usage(format!(
                "--server {s}: not a mailbox store"
            ))),
            None => Err(BackupError::Usage(format!(
                "--server {s}: no such server in the config"
            ))),
        })
        .collect()
}

/// The command run on a store.
fn command_for(config: &Config, store: &Server, options: &RunOptions) -> Result<Cmd, BackupError> {
    let binary = match &config.backup.remote_mailfleet {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(|e| {
            BackupError::Usage(format!(
                "[backup] remote_mailfleet is not set and this binary's path is unknown: {e}"
            ))
        })?,
    };
    let config_path: PathBuf = config
        .backup
        .remote_config
        .clone()
        .unwrap_or_else(|| config.source.clone());
    let mut argv = vec![
        binary.display().to_string(),
        "--config".into(),
        config_path.display().to_string(),
        "--json".into(),
        "backup".into(),
        "run".into(),
        "--here".into(),
        "--server".into(),
        store.name.clone(),
    ];
    for a in &options.accounts {
        argv.push("--account".into());
        argv.push(a.clone());
    }
    Ok(Cmd::new(argv).deadline(ON_STORE_DEADLINE))
}

/// Runs the backup on one store through its access and reads back how it ended.
async fn on_store(
    config: &Config,
    reach: &Reach,
    store: &Server,
    options: &RunOptions,
) -> Result<Ended, BackupError> {
    let cmd = command_for(config, store, options)?;
    let out = match reach.run(&store.name, &store.access, &cmd).await {
        Ok(out) => out,
        Err(e) => {
            return Ok(Ended::Aborted {
                error: e.to_string(),
            });
        }
    };
    match serde_json::from_slice::<Ended>(&out.stdout) {
        Ok(ended) => Ok(ended),
        // A usage error there (an unknown account) exits before printing JSON.
        Err(_) => Ok(Ended::Failed {
            error: format!(
                "{}: mailfleet on the store exited {}: {}",
                store.name,
                out.code.map_or("on a signal".into(), |c| c.to_string()),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        }),
    }
}

/// Backs up the stores asked for: those reached over SSH each on itself, one after the other
/// (they share the repository), the rest here in one run.
pub async fn run(
    config: &Config,
    options: &RunOptions,
    progress: Option<Box<dyn Progress>>,
) -> Result<Vec<StoreRun>, BackupError> {
    let chosen = stores(config, options)?;
    let (local, remote): (Vec<&Server>, Vec<&Server>) = chosen
        .into_iter()
        .partition(|s| matches!(s.access, Access::Local));
    let mut out = Vec::new();
    if !local.is_empty() {
        let names: Vec<String> = local.iter().map(|s| s.name.clone()).collect();
        let here = RunOptions {
            servers: names.clone(),
            accounts: options.accounts.clone(),
        };
        // An account asked for on a store elsewhere is that store's run's to find.
        let ended = super::job::run(config, &here, progress).await;
        match ended {
            Ok(ended) => out.push(StoreRun {
                stores: names,
                ran_on: "local".into(),
                ended,
            }),
            Err(BackupError::Usage(_)) if !remote.is_empty() && !options.accounts.is_empty() => {}
            Err(e) => return Err(e),
        }
    }
    let reach = Reach::new();
    for store in remote {
        let ended = on_store(config, &reach, store, options).await?;
        out.push(StoreRun {
            stores: vec![store.name.clone()],
            ran_on: store.access.describe(),
            ended,
        });
    }
    Ok(out)
}

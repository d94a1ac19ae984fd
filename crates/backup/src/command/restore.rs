//! `restore`: a snapshot (the newest, one by id, or the newest at a time) to a directory or
//! back into each account's live store over IMAP.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use mailfleet_core::Config;
use mailfleet_mailclient::Tls;
use serde::Serialize;

use crate::blocking::off_runtime;
use crate::error::BackupError;
use crate::into_store::{IntoStoreReport, Login, StoreAddr};
use crate::repo::Repository;
use crate::restore::{Filter, RestoreReport};
use crate::snapshot::Snapshot;

/// Which snapshot.
#[derive(Debug, Clone)]
pub enum Which {
    /// An id or a prefix of one (`latest` for the newest).
    Id(String),
    /// The newest taken at or before this time.
    At(chrono::DateTime<chrono::Utc>),
}

/// Where to.
#[derive(Debug, Clone)]
pub enum Destination {
    /// Maildirs under this directory (`DIR/DOMAIN/LOCAL/Maildir`).
    Dir(PathBuf),
    /// Each account's current store, over IMAP as the `[backup] imap_master_user`.
    Store,
}

/// What to restore, from which snapshot, to where.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The snapshot.
    pub snapshot: Which,
    /// Which messages.
    pub filter: Filter,
    /// Where they go.
    pub to: Destination,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Restored {
    /// Written to a directory.
    Dir {
        /// The snapshot restored from.
        snapshot: String,
        /// Where to.
        to: PathBuf,
        /// What was written.
        #[serde(flatten)]
        report: RestoreReport,
    },
    /// Appended into the stores.
    Store {
        /// The snapshot restored from.
        snapshot: String,
        /// What was appended and skipped.
        #[serde(flatten)]
        report: IntoStoreReport,
    },
}

impl Restored {
    /// The messages that could not be rebuilt (the repository's data for them is damaged).
    pub fn failed(&self) -> &[crate::restore::FailedMessage] {
        match self {
            Restored::Dir { report, .. } => &report.failed,
            Restored::Store { report, .. } => &report.failed,
        }
    }
}

/// The snapshot asked for. With one account asked for, `latest` and a time mean the newest
/// snapshot holding that account: each store reached over SSH writes snapshots of its own.
fn choose(
    repo: &Repository,
    which: &Which,
    account: Option<&str>,
) -> Result<Snapshot, BackupError> {
    let has = |s: &Snapshot| account.is_none_or(|a| s.accounts.iter().any(|e| e.address == a));
    let of = account.map_or(String::new(), |a| format!(" of {a}"));
    match which {
        Which::Id(id) if id == "latest" && account.is_some() => repo
            .snapshots()?
            .into_iter()
            .rfind(has)
            .ok_or_else(|| BackupError::NotFound(format!("no snapshot{of}"))),
        Which::Id(id) => repo.snapshot(id),
        Which::At(t) => repo
            .snapshots()?
            .into_iter()
            .rfind(|s| s.time <= *t && has(s))
            .ok_or_else(|| {
                BackupError::NotFound(format!(
                    "no snapshot{of} taken at or before {}",
                    t.to_rfc3339()
                ))
            }),
    }
}

/// Restores as the options say.
pub async fn restore(config: &Config, options: RestoreOptions) -> Result<Restored, BackupError> {
    let opened = config.clone();
    let which = options.snapshot.clone();
    let account = options.filter.account.clone();
    let (repo, snapshot) = off_runtime("a restore", move || {
        let repo = super::open(&opened)?;
        let snapshot = choose(&repo, &which, account.as_deref())?;
        Ok((repo, snapshot))
    })
    .await?;
    let repo = Arc::new(repo);
    match options.to {
        Destination::Dir(to) => {
            let (r, s, f, t) = (
                Arc::clone(&repo),
                snapshot.clone(),
                options.filter.clone(),
                to.clone(),
            );
            let report =
                off_runtime("a restore", move || crate::restore::to_dir(&r, &s, &f, &t)).await?;
            Ok(Restored::Dir {
                snapshot: snapshot.id,
                to,
                report,
            })
        }
        Destination::Store => {
            let report = into_stores(config, &repo, &snapshot, &options.filter).await?;
            Ok(Restored::Store {
                snapshot: snapshot.id,
                report,
            })
        }
    }
}

fn config_error(message: String) -> BackupError {
    BackupError::Format(message)
}

/// Into each account's current store: a moved account's mail goes to its new store.
async fn into_stores(
    config: &Config,
    repo: &Arc<Repository>,
    snapshot: &Snapshot,
    filter: &Filter,
) -> Result<IntoStoreReport, BackupError> {
    let b = &config.backup;
    let (Some(user), Some(file)) = (&b.imap_master_user, &b.imap_master_password_file) else {
        return Err(config_error(
            "restoring into the stores needs [backup] imap_master_user and imap_master_password_file (a Dovecot master user)".into(),
        ));
    };
    let password = std::fs::read_to_string(file).map_err(BackupError::io(file))?;
    let password = password.lines().next().unwrap_or("").to_string();
    let directory = mailfleet_core::directory::open(&config.directory).await?;
    let servers: HashMap<String, String> = directory
        .list(&mailfleet_core::directory::Filter::default())
        .await?
        .into_iter()
        .map(|a| (a.address.to_string(), a.server))
        .collect();
    let store_of = |address: &str| -> Result<StoreAddr, BackupError> {
        let name = servers
            .get(address)
            .ok_or_else(|| BackupError::NotFound(format!("{address}: not in the directory")))?;
        let store = |message: String| BackupError::Store {
            server: name.clone(),
            message,
        };
        let s = config
            .fleet
            .server(name)
            .ok_or_else(|| store("not in the config".into()))?;
        let port = s
            .ports
            .imap
            .ok_or_else(|| store("has no imap port in the config".into()))?;
        // Settings that cannot be loaded stop the restore: the master password never goes
        // out in clear text where TLS was asked for.
        let tls = Tls::new(&s.tls, &s.host).map_err(|e| store(e.to_string()))?;
        Ok(StoreAddr {
            server: name.clone(),
            host: s.host.clone(),
            port,
            tls,
        })
    };
    let login = Login {
        master_user: user,
        master_password: &password,
        timeout: b.timeout,
    };
    crate::into_store::into_store(repo, snapshot, filter, &login, &store_of).await
}

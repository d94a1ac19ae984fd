//! Repository locks: a backup holds a shared lock, prune an exclusive one, so prune never
//! deletes a blob a running backup has just decided to reuse. Locks are small objects under
//! `locks/`, refreshed while they are held; one not refreshed for [`STALE_AFTER`] (its
//! process died, its machine went away) is ignored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::BackupError;
use crate::repo::Repository;

/// A lock older than this without a refresh is ignored.
pub const STALE_AFTER: chrono::Duration = chrono::Duration::minutes(30);
/// How often a held lock is refreshed.
pub const REFRESH_EVERY: chrono::Duration = chrono::Duration::minutes(5);

/// What a lock object says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockInfo {
    /// `shared` (backup) or `exclusive` (prune).
    pub kind: String,
    /// The machine.
    pub host: String,
    /// The process.
    pub pid: u32,
    /// When it was last refreshed.
    pub time: DateTime<Utc>,
    /// The stores a backup backs up (empty: not said; older locks).
    #[serde(default)]
    pub servers: Vec<String>,
}

/// A held lock, removed on drop.
pub struct Lock<'a> {
    repo: &'a Repository,
    key: String,
    info: LockInfo,
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn live(info: &LockInfo, now: DateTime<Utc>) -> bool {
    if now - info.time > STALE_AFTER {
        return false;
    }
    // On this machine a dead process's lock is stale at once.
    if info.host == host() {
        return std::path::Path::new(&format!("/proc/{}", info.pid)).exists();
    }
    true
}

/// The other live locks in the repository; stale ones (a dead process's on this machine, or
/// one not refreshed for [`STALE_AFTER`]) are removed on the way, so killed runs leave nothing
/// behind for long.
fn others(repo: &Repository, mine: &str) -> Result<Vec<(String, LockInfo)>, BackupError> {
    let now = Utc::now();
    let mut out = Vec::new();
    for key in repo.target().list("locks")? {
        if key == mine {
            continue;
        }
        // A lock removed between listing and reading is simply gone.
        let Ok(raw) = repo.target().get(&key) else {
            continue;
        };
        match serde_json::from_slice::<LockInfo>(&raw) {
            Ok(info) if live(&info, now) => out.push((key, info)),
            Ok(info) => {
                tracing::info!(
                    "removing the stale {} lock of process {} on {} (last refreshed {})",
                    info.kind,
                    info.pid,
                    info.host,
                    info.time.format("%Y-%m-%d %H:%M:%S")
                );
                // Best effort: a lock another run removes meanwhile is gone all the same.
                if let Err(e) = repo.target().delete(&key) {
                    tracing::warn!("removing the stale lock {key}: {e}");
                }
            }
            // An unreadable lock object is kept and ignored: it names nothing to check.
            Err(e) => tracing::warn!("{key}: unreadable lock: {e}"),
        }
    }
    Ok(out)
}

/// The live backups of `server` in the repository (by their shared locks), stale locks
/// removed on the way; a lock that does not say which stores it backs up counts for all.
pub fn backups_of(repo: &Repository, server: &str) -> Result<Vec<LockInfo>, BackupError> {
    Ok(others(repo, "")?
        .into_iter()
        .map(|(_, info)| info)
        .filter(|i| {
            i.kind == "shared" && (i.servers.is_empty() || i.servers.iter().any(|s| s == server))
        })
        .collect())
}

impl<'a> Lock<'a> {
    fn take(
        repo: &'a Repository,
        kind: &str,
        servers: Vec<String>,
    ) -> Result<Lock<'a>, BackupError> {
        let info = LockInfo {
            servers,
            kind: kind.to_string(),
            host: host(),
            pid: std::process::id(),
            time: Utc::now(),
        };
        let key = format!(
            "locks/{kind}-{}-{}-{}",
            info.host,
            info.pid,
            info.time.timestamp_nanos_opt().unwrap_or(0)
        );
        let json = serde_json::to_vec(&info).map_err(|e| BackupError::Format(e.to_string()))?;
        repo.target().put(&key, &json)?;
        let lock = Lock { repo, key, info };
        let conflict = others(repo, &lock.key)?
            .into_iter()
            .find(|(_, o)| kind == "exclusive" || o.kind == "exclusive");
        if let Some((_, o)) = conflict {
            // Dropping `lock` removes ours again.
            return Err(BackupError::Locked(format!(
                "the repository is locked ({} lock of process {} on {} since {}): {}",
                o.kind,
                o.pid,
                o.host,
                o.time.format("%Y-%m-%d %H:%M:%S"),
                if o.kind == "exclusive" {
                    "a prune is running; try again when it is done"
                } else {
                    "a backup is running; prune when it is done"
                }
            )));
        }
        Ok(lock)
    }

    /// A shared lock (a backup of `servers`): refused while an exclusive one is held.
    pub fn shared(repo: &'a Repository, servers: Vec<String>) -> Result<Lock<'a>, BackupError> {
        Self::take(repo, "shared", servers)
    }

    /// An exclusive lock (prune): refused while any other lock is held.
    pub fn exclusive(repo: &'a Repository) -> Result<Lock<'a>, BackupError> {
        Self::take(repo, "exclusive", Vec::new())
    }

    /// Rewrites the lock with the current time if it is due, so it never looks stale.
    pub fn refresh(&mut self) -> Result<(), BackupError> {
        let now = Utc::now();
        if now - self.info.time < REFRESH_EVERY {
            return Ok(());
        }
        self.info.time = now;
        let json =
            serde_json::to_vec(&self.info).map_err(|e| BackupError::Format(e.to_string()))?;
        self.repo.target().put(&self.key, &json)
    }
}

impl Drop for Lock<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.repo.target().delete(&self.key) {
            tracing::warn!("removing the repository lock {}: {e}", self.key);
        }
    }
}

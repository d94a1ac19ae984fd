//! The snapshot records of a repository: written last by a run, listed (the readable ones
//! and, named, the damaged ones), looked up by id or prefix, forgotten.

use serde::Serialize;

use crate::error::BackupError;
use crate::repo::{Repository, SEALED_MAGIC};
use crate::snapshot::Snapshot;

/// The snapshots of a repository, the readable and the damaged.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SnapshotListing {
    /// Those that can be read, oldest first.
    pub intact: Vec<Snapshot>,
    /// Those that cannot.
    pub damaged: Vec<DamagedSnapshot>,
}

/// A snapshot that cannot be read.
#[derive(Debug, Clone, Serialize)]
pub struct DamagedSnapshot {
    /// Its id (its object's name).
    pub id: String,
    /// Why it cannot be read.
    pub error: String,
}

impl Repository {
    /// Writes a snapshot: the last write of a run, after every blob it references.
    pub fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), BackupError> {
        self.flush()?;
        let json =
            serde_json::to_vec_pretty(snapshot).map_err(|e| BackupError::Format(e.to_string()))?;
        let key = format!("snapshots/{}", snapshot.id);
        // Plain snapshots stay readable JSON; encrypted ones name folders and accounts.
        let object = match self.keys {
            Some(_) => self.wrap(&key, &json)?,
            None => json,
        };
        self.target.put(&key, &object)
    }

    /// Every snapshot that can be read, oldest first, and those that cannot (named, with
    /// why): one damaged snapshot never hides the others.
    pub fn snapshot_listing(&self) -> Result<SnapshotListing, BackupError> {
        let mut out = SnapshotListing::default();
        for key in self.target.list("snapshots")? {
            let raw = self.target.get(&key)?;
            let read = if raw.starts_with(SEALED_MAGIC) {
                self.unwrap_object(&key, &raw)
            } else {
                Ok(raw)
            };
            let parsed = read.and_then(|raw| {
                serde_json::from_slice::<Snapshot>(&raw)
                    .map_err(|e| BackupError::Corrupt(format!("{key}: {e}")))
            });
            match parsed {
                Ok(s) => out.intact.push(s),
                Err(e) => out.damaged.push(DamagedSnapshot {
                    id: key.trim_start_matches("snapshots/").to_string(),
                    error: e.to_string(),
                }),
            }
        }
        out.intact
            .sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
        out.damaged.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Every snapshot that can be read, oldest first (damaged ones are logged and left out).
    pub fn snapshots(&self) -> Result<Vec<Snapshot>, BackupError> {
        let listing = self.snapshot_listing()?;
        for d in &listing.damaged {
            tracing::warn!("snapshot {} is damaged and left out: {}", d.id, d.error);
        }
        Ok(listing.intact)
    }

    /// One snapshot by id or unique id prefix; `latest` for the newest.
    pub fn snapshot(&self, id: &str) -> Result<Snapshot, BackupError> {
        let listing = self.snapshot_listing()?;
        if let Some(d) = listing
            .damaged
            .iter()
            .find(|d| id != "latest" && d.id.starts_with(id))
        {
            return Err(BackupError::Corrupt(format!(
                "snapshot {} cannot be read: {}",
                d.id, d.error
            )));
        }
        let all = listing.intact;
        if id == "latest" {
            return all
                .into_iter()
                .last()
                .ok_or_else(|| BackupError::NotFound("the repository has no snapshot".into()));
        }
        let mut matching: Vec<Snapshot> =
            all.into_iter().filter(|s| s.id.starts_with(id)).collect();
        match matching.len() {
            1 => Ok(matching.remove(0)),
            0 => Err(BackupError::NotFound(format!("no snapshot {id:?}"))),
            n => Err(BackupError::NotFound(format!(
                "{n} snapshots start with {id:?}: give more of the id"
            ))),
        }
    }

    /// Removes a snapshot record (its blobs stay until prune).
    pub fn forget_snapshot(&self, id: &str) -> Result<(), BackupError> {
        self.target.delete(&format!("snapshots/{id}"))
    }
}

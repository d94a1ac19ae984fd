//! A repository on a target: `config` (format and identity), `blobs/XX/HASH` (zstd-compressed
//! content, named by the BLAKE3 hash of the plain content) and `snapshots/ID` (written last, so
//! a snapshot exists only once everything it references is durable).

use std::collections::HashSet;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::BackupError;
use crate::id::BlobId;
use crate::snapshot::Snapshot;
use crate::target::Target;

/// The repository format this version writes and reads.
pub const FORMAT: u32 = 1;
/// The first bytes of every blob object: format 1, zstd, no encryption.
const BLOB_MAGIC: &[u8; 4] = b"MFB1";
/// zstd level: mail compresses well at low levels; higher ones cost CPU for little.
const ZSTD_LEVEL: i32 = 3;

/// What `config` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepoConfig {
    /// The repository format.
    pub format: u32,
    /// A random identity, to tell repositories apart.
    pub id: String,
    /// When it was made.
    pub created: chrono::DateTime<chrono::Utc>,
}

/// A repository.
pub struct Repository {
    target: Box<dyn Target>,
    known: Mutex<HashSet<BlobId>>,
    /// Its config.
    pub config: RepoConfig,
}

/// Counts of what `put` did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PutStats {
    /// Blobs written.
    pub new_blobs: u64,
    /// Bytes written (compressed).
    pub stored_bytes: u64,
    /// Blobs already present.
    pub reused_blobs: u64,
}

fn blob_key(id: &BlobId) -> String {
    let hex = id.hex();
    format!("blobs/{}/{hex}", &hex[..2])
}

impl Repository {
    /// Makes a new repository on an empty target.
    pub fn init(target: Box<dyn Target>) -> Result<Self, BackupError> {
        if target.exists("config")? {
            return Err(BackupError::Format(format!(
                "{} already holds a repository",
                target.describe()
            )));
        }
        let config = RepoConfig {
            format: FORMAT,
            id: BlobId::of(
                format!(
                    "{}-{:?}-{}",
                    std::process::id(),
                    std::time::SystemTime::now(),
                    target.describe()
                )
                .as_bytes(),
            )
            .hex()[..16]
                .to_string(),
            created: chrono::Utc::now(),
        };
        let json =
            serde_json::to_vec_pretty(&config).map_err(|e| BackupError::Format(e.to_string()))?;
        target.put("config", &json)?;
        Ok(Repository {
            target,
            known: Mutex::new(HashSet::new()),
            config,
        })
    }

    /// Opens an existing repository and lists the blobs it holds.
    pub fn open(target: Box<dyn Target>) -> Result<Self, BackupError> {
        let raw = target.get("config").map_err(|e| match e {
            BackupError::NotFound(_) => BackupError::NotFound(format!(
                "{} is not a mailfleet repository (no config): run `mailfleet backup init`",
                target.describe()
            )),
            e => e,
        })?;
        let config: RepoConfig = serde_json::from_slice(&raw)
            .map_err(|e| BackupError::Corrupt(format!("config: {e}")))?;
        if config.format != FORMAT {
            return Err(BackupError::Format(format!(
                "repository format {} is not {FORMAT}, the one this mailfleet reads",
                config.format
            )));
        }
        let known = target
            .list("blobs")?
            .iter()
            .filter_map(|k| k.rsplit('/').next().and_then(BlobId::parse))
            .collect();
        Ok(Repository {
            target,
            known: Mutex::new(known),
            config,
        })
    }

    /// Lists the blobs again (after taking a lock: a prune may have run since open).
    pub fn reload_index(&self) -> Result<(), BackupError> {
        let known: HashSet<BlobId> = self
            .target
            .list("blobs")?
            .iter()
            .filter_map(|k| k.rsplit('/').next().and_then(BlobId::parse))
            .collect();
        if let Ok(mut k) = self.known.lock() {
            *k = known;
        }
        Ok(())
    }

    /// Opens the repository, making it first if the target is empty.
    pub fn open_or_init(target: Box<dyn Target>) -> Result<Self, BackupError> {
        if target.exists("config")? {
            Self::open(target)
        } else {
            Self::init(target)
        }
    }

    /// The target, for what the repository does not wrap.
    pub fn target(&self) -> &dyn Target {
        self.target.as_ref()
    }

    /// Whether the repository holds this blob (as listed at open, plus what was written since).
    pub fn has(&self, id: &BlobId) -> bool {
        self.known.lock().map(|k| k.contains(id)).unwrap_or(false)
    }

    /// Every blob id known.
    pub fn blob_ids(&self) -> Vec<BlobId> {
        self.known
            .lock()
            .map(|k| k.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Stores content (unless present) and returns its id.
    pub fn put(&self, content: &[u8], stats: &mut PutStats) -> Result<BlobId, BackupError> {
        let id = BlobId::of(content);
        if self.has(&id) {
            stats.reused_blobs += 1;
            return Ok(id);
        }
        let mut object = BLOB_MAGIC.to_vec();
        let compressed =
            zstd::bulk::compress(content, ZSTD_LEVEL).map_err(|e| BackupError::Target {
                what: "compress".into(),
                message: e.to_string(),
            })?;
        object.extend_from_slice(&compressed);
        self.target.put(&blob_key(&id), &object)?;
        stats.new_blobs += 1;
        stats.stored_bytes += object.len() as u64;
        if let Ok(mut k) = self.known.lock() {
            k.insert(id);
        }
        Ok(id)
    }

    /// A blob's content, checked against its id.
    pub fn get(&self, id: &BlobId) -> Result<Vec<u8>, BackupError> {
        let object = self.target.get(&blob_key(id))?;
        let body = object
            .strip_prefix(BLOB_MAGIC.as_slice())
            .ok_or_else(|| BackupError::Corrupt(format!("blob {id}: unknown header")))?;
        let content = zstd::stream::decode_all(body)
            .map_err(|e| BackupError::Corrupt(format!("blob {id}: {e}")))?;
        if BlobId::of(&content) != *id {
            return Err(BackupError::Corrupt(format!(
                "blob {id}: content does not match its hash"
            )));
        }
        Ok(content)
    }

    /// Stores a value as a JSON blob.
    pub fn put_json<T: Serialize>(
        &self,
        value: &T,
        stats: &mut PutStats,
    ) -> Result<BlobId, BackupError> {
        let json = serde_json::to_vec(value).map_err(|e| BackupError::Format(e.to_string()))?;
        self.put(&json, stats)
    }

    /// Reads a JSON blob.
    pub fn get_json<T: for<'de> Deserialize<'de>>(&self, id: &BlobId) -> Result<T, BackupError> {
        let raw = self.get(id)?;
        serde_json::from_slice(&raw).map_err(|e| BackupError::Corrupt(format!("blob {id}: {e}")))
    }

    /// Removes a blob (prune only).
    pub fn delete_blob(&self, id: &BlobId) -> Result<(), BackupError> {
        self.target.delete(&blob_key(id))?;
        if let Ok(mut k) = self.known.lock() {
            k.remove(id);
        }
        Ok(())
    }

    /// Writes a snapshot: the last write of a run, after every blob it references.
    pub fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), BackupError> {
        let json =
            serde_json::to_vec_pretty(snapshot).map_err(|e| BackupError::Format(e.to_string()))?;
        self.target
            .put(&format!("snapshots/{}", snapshot.id), &json)
    }

    /// Every snapshot, oldest first.
    pub fn snapshots(&self) -> Result<Vec<Snapshot>, BackupError> {
        let mut out = Vec::new();
        for key in self.target.list("snapshots")? {
            let raw = self.target.get(&key)?;
            let s: Snapshot = serde_json::from_slice(&raw)
                .map_err(|e| BackupError::Corrupt(format!("{key}: {e}")))?;
            out.push(s);
        }
        out.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// One snapshot by id or unique id prefix; `latest` for the newest.
    pub fn snapshot(&self, id: &str) -> Result<Snapshot, BackupError> {
        let all = self.snapshots()?;
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

//! A repository on a target: `config` (format and identity), `blobs/XX/HASH` (zstd-compressed
//! content, named by the BLAKE3 hash of the plain content) and `snapshots/ID` (written last, so
//! a snapshot exists only once everything it references is durable). With a key file, blobs
//! and snapshots are encrypted and blob names are keyed hashes (see `crypto`).

use std::collections::HashSet;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::crypto::Keys;
use crate::error::BackupError;
use crate::id::BlobId;
use crate::snapshot::Snapshot;
use crate::target::Target;

/// The repository format this version writes and reads.
pub const FORMAT: u32 = 1;
/// The first bytes of a plain object: format 1, zstd.
const BLOB_MAGIC: &[u8; 4] = b"MFB1";
/// The first bytes of an encrypted object: format 1, zstd, then sealed (`crypto`).
const SEALED_MAGIC: &[u8; 4] = b"MFE1";
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
    /// Set when the repository is encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
}

/// How an encrypted repository is encrypted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Encryption {
    /// The cipher (`xchacha20poly1305`).
    pub cipher: String,
    /// A value derived from the key, to tell a wrong key file at open.
    pub key_check: String,
}

/// A repository.
pub struct Repository {
    target: Box<dyn Target>,
    known: Mutex<HashSet<BlobId>>,
    keys: Option<Keys>,
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
    /// Makes a new repository on an empty target, encrypted when keys are given.
    pub fn init(target: Box<dyn Target>, keys: Option<Keys>) -> Result<Self, BackupError> {
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
            encryption: keys.as_ref().map(|k| Encryption {
                cipher: crate::crypto::CIPHER.into(),
                key_check: k.check().into(),
            }),
        };
        let json =
            serde_json::to_vec_pretty(&config).map_err(|e| BackupError::Format(e.to_string()))?;
        target.put("config", &json)?;
        Ok(Repository {
            target,
            known: Mutex::new(HashSet::new()),
            keys,
            config,
        })
    }

    /// Opens an existing repository and lists the blobs it holds; `keys` must be given for an
    /// encrypted one (and only then).
    pub fn open(target: Box<dyn Target>, keys: Option<Keys>) -> Result<Self, BackupError> {
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
        check_keys(&config, keys.as_ref(), &target.describe())?;
        let known = target
            .list("blobs")?
            .iter()
            .filter_map(|k| k.rsplit('/').next().and_then(BlobId::parse))
            .collect();
        Ok(Repository {
            target,
            known: Mutex::new(known),
            keys,
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
    pub fn open_or_init(target: Box<dyn Target>, keys: Option<Keys>) -> Result<Self, BackupError> {
        if target.exists("config")? {
            Self::open(target, keys)
        } else {
            Self::init(target, keys)
        }
    }

    /// Whether objects are encrypted.
    pub fn encrypted(&self) -> bool {
        self.keys.is_some()
    }

    /// The id content has in this repository (keyed when encrypted).
    pub fn id_of(&self, content: &[u8]) -> BlobId {
        match &self.keys {
            Some(k) => k.id_of(content),
            None => BlobId::of(content),
        }
    }

    /// An object as stored: magic, then zstd (sealed when encrypted).
    fn wrap(&self, key: &str, plain: &[u8]) -> Result<Vec<u8>, BackupError> {
        let compressed =
            zstd::bulk::compress(plain, ZSTD_LEVEL).map_err(|e| BackupError::Target {
                what: "compress".into(),
                message: e.to_string(),
            })?;
        Ok(match &self.keys {
            None => [BLOB_MAGIC.as_slice(), &compressed].concat(),
            Some(k) => [SEALED_MAGIC.as_slice(), &k.seal(key, &compressed)?].concat(),
        })
    }

    /// The plain content of a stored object.
    fn unwrap_object(&self, key: &str, object: &[u8]) -> Result<Vec<u8>, BackupError> {
        let compressed = if let Some(body) = object.strip_prefix(BLOB_MAGIC.as_slice()) {
            body.to_vec()
        } else if let Some(body) = object.strip_prefix(SEALED_MAGIC.as_slice()) {
            let keys = self.keys.as_ref().ok_or_else(|| {
                BackupError::Format(format!("{key} is encrypted: set [backup] key_file"))
            })?;
            keys.open(key, body)?
        } else {
            return Err(BackupError::Corrupt(format!("{key}: unknown header")));
        };
        zstd::stream::decode_all(compressed.as_slice())
            .map_err(|e| BackupError::Corrupt(format!("{key}: {e}")))
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
        let id = self.id_of(content);
        if self.has(&id) {
            stats.reused_blobs += 1;
            return Ok(id);
        }
        let key = blob_key(&id);
        let object = self.wrap(&key, content)?;
        self.target.put(&key, &object)?;
        stats.new_blobs += 1;
        stats.stored_bytes += object.len() as u64;
        if let Ok(mut k) = self.known.lock() {
            k.insert(id);
        }
        Ok(id)
    }

    /// A blob's content, checked against its id.
    pub fn get(&self, id: &BlobId) -> Result<Vec<u8>, BackupError> {
        let key = blob_key(id);
        let object = self.target.get(&key)?;
        let content = self.unwrap_object(&key, &object).map_err(|e| match e {
            BackupError::Corrupt(m) => BackupError::Corrupt(format!("blob {m}")),
            e => e,
        })?;
        if self.id_of(&content) != *id {
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
        let key = format!("snapshots/{}", snapshot.id);
        // Plain snapshots stay readable JSON; encrypted ones name folders and accounts.
        let object = match self.keys {
            Some(_) => self.wrap(&key, &json)?,
            None => json,
        };
        self.target.put(&key, &object)
    }

    /// Every snapshot, oldest first.
    pub fn snapshots(&self) -> Result<Vec<Snapshot>, BackupError> {
        let mut out = Vec::new();
        for key in self.target.list("snapshots")? {
            let raw = self.target.get(&key)?;
            let raw = if raw.starts_with(SEALED_MAGIC) {
                self.unwrap_object(&key, &raw)?
            } else {
                raw
            };
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

/// Refuses a missing, unneeded or wrong key, naming the problem.
fn check_keys(config: &RepoConfig, keys: Option<&Keys>, target: &str) -> Result<(), BackupError> {
    match (&config.encryption, keys) {
        (None, None) => Ok(()),
        (Some(_), None) => Err(BackupError::Format(format!(
            "{target} is encrypted: set [backup] key_file to its key file"
        ))),
        (None, Some(_)) => Err(BackupError::Format(format!(
            "{target} is not encrypted but [backup] key_file is set: use a new repository \
             for encrypted backups, or remove key_file"
        ))),
        (Some(e), Some(_)) if e.cipher != crate::crypto::CIPHER => Err(BackupError::Format(
            format!("{target}: unknown cipher {:?}", e.cipher),
        )),
        (Some(e), Some(k)) if e.key_check != k.check() => Err(BackupError::Format(format!(
            "{target}: [backup] key_file is not this repository's key"
        ))),
        (Some(_), Some(_)) => Ok(()),
    }
}

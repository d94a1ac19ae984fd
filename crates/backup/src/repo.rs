//! A repository on a target: `config` (format and identity), `packs/XX/NAME` (blobs:
//! zstd-compressed content named by the BLAKE3 hash of the plain content, appended to packs),
//! `index/NAME` (where each blob of a pack lies), `dicts/ID` (compression dictionaries, see
//! `dict`) and `snapshots/ID` (written last, so a snapshot exists only once everything it
//! references is durable). With a key file, objects, indexes, dictionaries and snapshots are
//! encrypted and blob names are keyed hashes (see `crypto`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use serde::{Deserialize, Serialize};

use crate::blob_index::{BlobIndex, RECENT_LIMIT};
use crate::crypto::Keys;
use crate::dict::{Dictionary, Dicts, Kind, Sampler};
use crate::error::BackupError;
use crate::group::{GroupCache, MEMBER_MAX, Pending};
use crate::id::BlobId;
use crate::pack::{PACK_SIZE, PackWriter, index_key, pack_key};
use crate::pack_cache::PackCache;
use crate::target::Target;

/// The repository format this version writes.
pub const FORMAT: u32 = 4;
/// Older formats are read as they are, and become this one when the first dictionary or group
/// is stored in them: 3 added dictionaries, 4 groups (`group`); each only adds objects older
/// readers do not know.
pub const READS: [u32; 3] = [2, 3, FORMAT];
/// The first bytes of an object, plain and encrypted.
pub(crate) type Magic = (&'static [u8; 4], &'static [u8; 4]);
/// A single object: format 1, zstd (`MFB1`); encrypted: zstd, then sealed (`crypto`).
pub(crate) const OBJECT: Magic = (b"MFB1", SEALED_MAGIC);
/// The first bytes of an encrypted object.
pub(crate) const SEALED_MAGIC: &[u8; 4] = b"MFE1";

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
    pub(crate) target: Box<dyn Target>,
    state: Mutex<State>,
    pub(crate) cache: Mutex<PackCache>,
    pub(crate) keys: Option<Keys>,
    pub(crate) dicts: RwLock<Dicts>,
    pub(crate) sampler: Mutex<Sampler>,
    /// Groups decoded lately, for reads of their other members.
    pub(crate) groups: Mutex<GroupCache>,
    /// Set once the config on the target says `FORMAT`.
    pub(crate) upgraded: AtomicBool,
    /// Where the local index file is kept, if anywhere.
    pub(crate) index_cache: Option<PathBuf>,
    /// Its config (as opened: `dict` may raise the format on the target).
    pub config: RepoConfig,
}

/// What the repository holds, as its index says, and the pack being filled.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) index: BlobIndex,
    pub(crate) writer: PackWriter,
    /// Full packs being written (outside the lock, so other threads go on storing): their
    /// blobs count as present and read from here until their segment is indexed.
    pub(crate) flushing: Vec<Arc<PackWriter>>,
    /// Small blobs waiting to be compressed together, one group per kind (`Kind::slot`).
    pub(crate) pending: [Option<Pending>; 2],
    /// Full groups being compressed (outside the lock): present, and read from here.
    pub(crate) sealing: Vec<Arc<Pending>>,
    pub(crate) damaged_indexes: Vec<String>,
}

impl State {
    pub(crate) fn present(&self, id: &BlobId) -> bool {
        self.pending_content(id).is_some()
            || self.writer.blobs.contains_key(id)
            || self.flushing.iter().any(|p| p.blobs.contains_key(id))
            || self.index.get(id).is_some()
    }

    /// The content of a blob still waiting in a group.
    pub(crate) fn pending_content(&self, id: &BlobId) -> Option<&[u8]> {
        self.pending
            .iter()
            .flatten()
            .chain(self.sealing.iter().map(|p| p.as_ref()))
            .find_map(|p| p.content(id))
    }
}

/// Each pack's blobs: id, offset, length.
pub type BlobsByPack = HashMap<String, Vec<(BlobId, u64, u32)>>;

/// Counts of what `put` did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutStats {
    /// Blobs written.
    pub new_blobs: u64,
    /// Bytes written (compressed).
    pub stored_bytes: u64,
    /// Blobs already present.
    pub reused_blobs: u64,
}

/// The authenticated context of a blob's object: it binds the ciphertext to the blob's name.
pub(crate) fn blob_context(id: &BlobId) -> String {
    format!("blob:{}", id.hex())
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
        Ok(Repository::new(target, keys, config))
    }

    /// Opens an existing repository and reads its index; `keys` must be given for an
    /// encrypted one (and only then).
    pub fn open(target: Box<dyn Target>, keys: Option<Keys>) -> Result<Self, BackupError> {
        let repo = Self::open_unindexed(target, keys)?;
        repo.reload_index()?;
        Ok(repo)
    }

    /// Reads and checks the config and keys.
    fn open_unindexed(target: Box<dyn Target>, keys: Option<Keys>) -> Result<Self, BackupError> {
        let raw = target.get("config").map_err(|e| match e {
            BackupError::NotFound(_) => BackupError::NotFound(format!(
                "{} is not a mailfleet repository (no config)",
                target.describe()
            )),
            e => e,
        })?;
        let config: RepoConfig = serde_json::from_slice(&raw)
            .map_err(|e| BackupError::Corrupt(format!("{}/config: {e}", target.describe())))?;
        if !READS.contains(&config.format) {
            return Err(BackupError::Format(format!(
                "repository format {} is not one this mailfleet reads ({READS:?})",
                config.format
            )));
        }
        check_keys(&config, keys.as_ref(), &target.describe())?;
        Ok(Repository::new(target, keys, config))
    }

    fn new(target: Box<dyn Target>, keys: Option<Keys>, config: RepoConfig) -> Self {
        Repository {
            target,
            state: Mutex::new(State::default()),
            cache: Mutex::new(PackCache::default()),
            keys,
            dicts: RwLock::new(Dicts::default()),
            sampler: Mutex::new(Sampler::default()),
            groups: Mutex::new(GroupCache::default()),
            upgraded: AtomicBool::new(false),
            index_cache: None,
            config,
        }
    }

    /// Opens (or makes) a repository for a backup run: its blob index kept in a local file
    /// under `cache` (a directory of its own per repository is made there), so a run holds
    /// in memory only the blobs it adds. The index is read when the run holds its lock
    /// (`run::run` reloads it), not here.
    pub fn open_for_backup(
        target: Box<dyn Target>,
        keys: Option<Keys>,
        cache: &std::path::Path,
    ) -> Result<Self, BackupError> {
        let fresh = !target.exists("config")?;
        let mut repo = if fresh {
            Self::init(target, keys)?
        } else {
            Self::open_unindexed(target, keys)?
        };
        let dir = cache.join(&repo.config.id);
        std::fs::create_dir_all(&dir).map_err(BackupError::io(&dir))?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            // Blob ids and sizes only, but nobody else's business.
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .map_err(BackupError::io(&dir))?;
        }
        crate::index_file::remove_leftovers(&dir);
        repo.index_cache = Some(dir);
        Ok(repo)
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way later
        // readers could misuse (each update is one insert), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Index segments that could not be read at the last load.
    pub fn damaged_indexes(&self) -> Vec<String> {
        self.state().damaged_indexes.clone()
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
    pub(crate) fn wrap(&self, key: &str, plain: &[u8]) -> Result<Vec<u8>, BackupError> {
        self.wrap_with(key, plain, None)
    }

    /// An object compressed with a dictionary (whose id its zstd frame records).
    pub(crate) fn wrap_with(
        &self,
        key: &str,
        plain: &[u8],
        dict: Option<&Dictionary>,
    ) -> Result<Vec<u8>, BackupError> {
        self.wrap_as(OBJECT, key, plain, dict)
    }

    /// An object with the headers of `magic` (plain, encrypted).
    pub(crate) fn wrap_as(
        &self,
        magic: Magic,
        key: &str,
        plain: &[u8],
        dict: Option<&Dictionary>,
    ) -> Result<Vec<u8>, BackupError> {
        let compressed = crate::codec::compress(plain, dict)?;
        Ok(match &self.keys {
            None => [magic.0.as_slice(), &compressed].concat(),
            Some(k) => [magic.1.as_slice(), &k.seal(key, &compressed)?].concat(),
        })
    }

    /// The plain content of a stored object.
    pub(crate) fn unwrap_object(&self, key: &str, object: &[u8]) -> Result<Vec<u8>, BackupError> {
        self.unwrap_as(OBJECT, key, object)
    }

    /// The plain content of an object with the headers of `magic`.
    pub(crate) fn unwrap_as(
        &self,
        magic: Magic,
        key: &str,
        object: &[u8],
    ) -> Result<Vec<u8>, BackupError> {
        let compressed = if let Some(body) = object.strip_prefix(magic.0.as_slice()) {
            body.to_vec()
        } else if let Some(body) = object.strip_prefix(magic.1.as_slice()) {
            let keys = self.keys.as_ref().ok_or_else(|| {
                BackupError::Format(format!("{key} is encrypted: set [backup] key_file"))
            })?;
            keys.open(key, body)?
        } else {
            return Err(BackupError::Corrupt(format!("{key}: unknown header")));
        };
        let dict = match crate::codec::dictionary_of(&compressed) {
            None => None,
            Some(id) => Some(
                self.dicts()
                    .get(id)
                    .map_err(|e| BackupError::Corrupt(format!("{key}: {e}")))?,
            ),
        };
        crate::codec::decompress(&compressed, dict.as_deref())
            .map_err(|e| BackupError::Corrupt(format!("{key}: {e}")))
    }

    pub(crate) fn dicts(&self) -> std::sync::RwLockReadGuard<'_, Dicts> {
        // Each update is one insert: a panic elsewhere cannot leave the map half-changed.
        self.dicts.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The target, for what the repository does not wrap.
    pub fn target(&self) -> &dyn Target {
        self.target.as_ref()
    }

    /// Whether the repository holds this blob (indexed, or in the pack being filled).
    pub fn has(&self, id: &BlobId) -> bool {
        let s = self.state();
        s.present(id)
    }

    /// Whether every segment of the index could be read: then every blob a snapshot
    /// references is there (a snapshot is written after its blobs, and prune keeps them), and a
    /// run need not look up the messages it finds unchanged.
    pub fn index_complete(&self) -> bool {
        self.state().damaged_indexes.is_empty()
    }

    /// The pack an indexed blob lies in.
    pub fn pack_of(&self, id: &BlobId) -> Option<String> {
        let s = self.state();
        s.index
            .get(id)
            .and_then(|loc| s.index.packs.get(loc.pack as usize).cloned())
    }

    /// How many blobs the index holds and the bytes they take in the packs (compressed, and
    /// encrypted when the repository is).
    pub fn stored(&self) -> Result<(u64, u64), BackupError> {
        let s = self.state();
        let (mut n, mut bytes) = (0u64, 0u64);
        // The members of a group share its object: its bytes count once.
        let mut seen = std::collections::HashSet::new();
        s.index
            .for_each(|_, loc| {
                n += 1;
                if seen.insert((loc.pack, loc.offset)) {
                    bytes += u64::from(loc.len);
                }
            })
            .map_err(|e| BackupError::Corrupt(format!("the local blob index: {e}")))?;
        Ok((n, bytes))
    }

    /// Every indexed blob with the name of its pack.
    pub fn blobs_by_pack(&self) -> Result<BlobsByPack, BackupError> {
        let s = self.state();
        let mut out = BlobsByPack::new();
        s.index
            .for_each(|id, loc| {
                if let Some(name) = s.index.packs.get(loc.pack as usize) {
                    out.entry(name.clone())
                        .or_default()
                        .push((*id, loc.offset, loc.len));
                }
            })
            .map_err(|e| BackupError::Corrupt(format!("the local blob index: {e}")))?;
        Ok(out)
    }

    /// Stores content (unless present) and returns its id. Compression and encryption run
    /// outside the repository's lock, so several threads can store at once.
    pub fn put(&self, content: &[u8], stats: &mut PutStats) -> Result<BlobId, BackupError> {
        self.put_kind(content, None, stats)
    }

    /// Stores content of a kind: compressed with that kind's dictionary, and sampled to train
    /// one (see `dict`).
    pub fn put_kind(
        &self,
        content: &[u8],
        kind: Option<Kind>,
        stats: &mut PutStats,
    ) -> Result<BlobId, BackupError> {
        let id = self.id_of(content);
        if self.has(&id) {
            stats.reused_blobs += 1;
            return Ok(id);
        }
        let dict: Option<Arc<Dictionary>> = match kind {
            Some(k) => {
                self.sample(k, content);
                if content.len() <= MEMBER_MAX {
                    self.add_member(k, id, content, stats)?;
                    return Ok(id);
                }
                self.dicts().current(k)
            }
            None => None,
        };
        let object = self.wrap_with(&blob_context(&id), content, dict.as_deref())?;
        self.add_object(id, &object, stats)?;
        Ok(id)
    }

    /// Appends a stored object (as `wrap` made it) to the pack being filled.
    pub(crate) fn add_object(
        &self,
        id: BlobId,
        object: &[u8],
        stats: &mut PutStats,
    ) -> Result<(), BackupError> {
        let full = {
            let mut s = self.state();
            // (looked up again under the lock: another thread may have stored it meanwhile)
            if s.present(&id) {
                stats.reused_blobs += 1;
                return Ok(());
            }
            s.writer.add(id, object);
            s.writer.data.len() >= PACK_SIZE
        };
        stats.new_blobs += 1;
        stats.stored_bytes += object.len() as u64;
        if full {
            self.flush_pack()?;
        }
        Ok(())
    }

    /// Compresses the groups waiting, then writes the pack being filled and its index segment.
    /// Called before a snapshot is saved, so everything it references is durable first.
    pub fn flush(&self) -> Result<(), BackupError> {
        self.seal_groups(&mut PutStats::default())?;
        self.flush_pack()
    }

    /// Writes the pack being filled and then its index segment.
    pub(crate) fn flush_pack(&self) -> Result<(), BackupError> {
        let pack = {
            let mut s = self.state();
            if s.writer.is_empty() {
                return Ok(());
            }
            let pack = Arc::new(std::mem::take(&mut s.writer));
            s.flushing.push(pack.clone());
            pack
        };
        // Hashing and writing the pack take long (an fsync): the other threads must not wait.
        let written = (|| {
            let segment = pack.segment();
            self.target.put(&pack_key(&segment.pack), &pack.data)?;
            let json =
                serde_json::to_vec(&segment).map_err(|e| BackupError::Format(e.to_string()))?;
            let index = index_key(&segment.pack);
            self.target.put(&index, &self.wrap(&index, &json)?)?;
            Ok::<_, BackupError>(segment)
        })();
        let mut s = self.state();
        s.flushing.retain(|p| !Arc::ptr_eq(p, &pack));
        s.index.add_segment(written?);
        let big = s.index.recent() >= RECENT_LIMIT;
        drop(s);
        if big {
            self.settle_index()?;
        }
        Ok(())
    }

    /// Forgets a pack's blobs in memory only (prune, before copying them to a new pack).
    pub(crate) fn unindex_pack(&self, name: &str) {
        self.state().index.remove_pack(name);
    }

    /// Removes a pack and its index segment (prune only, under the exclusive lock): the
    /// index first, so a crash in between leaves an unindexed pack, not a dangling index.
    pub(crate) fn delete_pack(&self, name: &str) -> Result<(), BackupError> {
        self.target.delete(&index_key(name))?;
        self.target.delete(&pack_key(name))?;
        self.unindex_pack(name);
        Ok(())
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

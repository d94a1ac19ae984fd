//! Where a repository's bytes live. A target stores whole objects under `/`-separated keys;
//! every write is atomic (a temporary file, fsync, rename, fsync of the directory), so a crash
//! leaves either the old state or the new one, never half an object.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::error::BackupError;

/// A place that stores objects by key.
pub trait Target: Send + Sync {
    /// Stores `data` under `key`, atomically and durably.
    fn put(&self, key: &str, data: &[u8]) -> Result<(), BackupError>;
    /// The object under `key`.
    fn get(&self, key: &str) -> Result<Vec<u8>, BackupError>;
    /// `len` bytes of the object under `key` from `offset` (one blob of a pack).
    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>, BackupError>;
    /// Whether `key` exists.
    fn exists(&self, key: &str) -> Result<bool, BackupError>;
    /// The keys directly or indirectly under `prefix` (a directory-like key).
    fn list(&self, prefix: &str) -> Result<Vec<String>, BackupError>;
    /// Removes `key` (absent is fine).
    fn delete(&self, key: &str) -> Result<(), BackupError>;
    /// What to call the target in messages.
    fn describe(&self) -> String;
}

/// A directory on a local or mounted filesystem.
#[derive(Debug, Clone)]
pub struct DirTarget {
    root: PathBuf,
}

fn target_err(what: String) -> impl FnOnce(std::io::Error) -> BackupError {
    move |e| BackupError::Target {
        what,
        message: e.to_string(),
    }
}

impl DirTarget {
    /// A target rooted at `root` (created if missing).
    pub fn new(root: &Path) -> Result<Self, BackupError> {
        std::fs::create_dir_all(root.join("tmp"))
            .map_err(target_err(format!("create {}", root.display())))?;
        Ok(DirTarget {
            root: root.to_path_buf(),
        })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl Target for DirTarget {
    fn put(&self, key: &str, data: &[u8]) -> Result<(), BackupError> {
        let path = self.path(key);
        let err = || format!("write {key}");
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        if !dir.exists() {
            std::fs::create_dir_all(&dir).map_err(target_err(err()))?;
        }
        let tmp = self.root.join("tmp").join(format!(
            "{}.{}.{:?}",
            key.replace('/', "_"),
            std::process::id(),
            std::thread::current().id()
        ));
        let mut f = std::fs::File::create(&tmp).map_err(target_err(err()))?;
        f.write_all(data).map_err(target_err(err()))?;
        f.sync_all().map_err(target_err(err()))?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(target_err(err()))?;
        sync_dir(&dir).map_err(target_err(err()))
    }

    fn get(&self, key: &str) -> Result<Vec<u8>, BackupError> {
        std::fs::read(self.path(key)).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                BackupError::NotFound(format!("{key} is not in the repository"))
            } else {
                BackupError::Target {
                    what: format!("read {key}"),
                    message: e.to_string(),
                }
            }
        })
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>, BackupError> {
        use std::io::{Read as _, Seek as _};
        let what = || format!("read {key} at {offset}");
        let mut f = std::fs::File::open(self.path(key)).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                BackupError::NotFound(format!("{key} is not in the repository"))
            } else {
                target_err(what())(e)
            }
        })?;
        f.seek(std::io::SeekFrom::Start(offset))
            .map_err(target_err(what()))?;
        let mut out = vec![0; usize::try_from(len).unwrap_or(usize::MAX).min(1 << 32)];
        f.read_exact(&mut out).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                BackupError::Corrupt(format!("{key} is shorter than its index says"))
            } else {
                target_err(what())(e)
            }
        })?;
        Ok(out)
    }

    fn exists(&self, key: &str) -> Result<bool, BackupError> {
        self.path(key)
            .try_exists()
            .map_err(target_err(format!("stat {key}")))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, BackupError> {
        let mut out = Vec::new();
        let mut dirs = vec![self.path(prefix)];
        while let Some(dir) = dirs.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(target_err(format!("list {prefix}"))(e)),
            };
            for entry in entries {
                let entry = entry.map_err(target_err(format!("list {prefix}")))?;
                let path = entry.path();
                if entry
                    .file_type()
                    .map_err(target_err(format!("list {prefix}")))?
                    .is_dir()
                {
                    dirs.push(path);
                } else if let Ok(rel) = path.strip_prefix(&self.root) {
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<(), BackupError> {
        match std::fs::remove_file(self.path(key)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(target_err(format!("delete {key}"))(e))
            }
            _ => Ok(()),
        }
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}

//! Reading a live Maildir as Dovecot keeps it, without taking any of its locks: folders
//! (Maildir++), message files in `new/` and `cur/` with their flags, `dovecot-uidlist` (UIDs,
//! UIDVALIDITY), `dovecot-keywords` and `subscriptions`. Files renamed or moved while we read
//! (a flag change, new/ to cur/) are found again by their base name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::BackupError;

/// One message file as listed.
#[derive(Debug, Clone)]
pub struct FileEntry {
    /// The name up to `:`.
    pub base: String,
    /// What followed `:`, if anything.
    pub info: Option<String>,
    /// In `new/`.
    pub new: bool,
    /// Size in bytes.
    pub size: u64,
    /// Modification time: seconds and nanoseconds.
    pub mtime: (i64, u32),
}

/// `dovecot-uidlist`, as far as the backup needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Uidlist {
    /// UIDVALIDITY.
    pub uidvalidity: Option<u32>,
    /// The next UID.
    pub next_uid: Option<u32>,
    /// The mailbox GUID.
    pub guid: Option<String>,
    /// Base name to UID.
    pub uids: HashMap<String, u32>,
}

/// One folder as listed.
#[derive(Debug, Clone)]
pub struct ScannedFolder {
    /// The directory under `Maildir/` (empty for INBOX).
    pub dir: String,
    /// Its messages.
    pub files: Vec<FileEntry>,
    /// Its uidlist, when present and readable.
    pub uidlist: Option<Uidlist>,
    /// Its `dovecot-keywords`, verbatim.
    pub keywords: Option<String>,
}

/// Splits a Maildir file name into its base and info.
pub fn split_name(name: &str) -> (String, Option<String>) {
    match name.split_once(':') {
        Some((b, i)) => (b.to_string(), Some(i.to_string())),
        None => (name.to_string(), None),
    }
}

/// Parses `dovecot-uidlist` (version 3: `3 V<validity> N<next> G<guid>`, then
/// `<uid> [fields] :<file name>`); lines it does not understand are skipped.
pub fn parse_uidlist(text: &str) -> Uidlist {
    let mut u = Uidlist::default();
    let mut lines = text.lines();
    if let Some(header) = lines.next() {
        for field in header.split_whitespace().skip(1) {
            let (key, value) = field.split_at(1.min(field.len()));
            match key {
                "V" => u.uidvalidity = value.parse().ok(),
                "N" => u.next_uid = value.parse().ok(),
                "G" => u.guid = Some(value.to_string()),
                _ => {}
            }
        }
    }
    for line in lines {
        let Some((head, name)) = line.split_once(" :").or_else(|| line.split_once(':')) else {
            continue;
        };
        let Some(uid) = head.split_whitespace().next().and_then(|n| n.parse().ok()) else {
            continue;
        };
        u.uids.insert(split_name(name).0, uid);
    }
    u
}

fn read_optional(path: &Path) -> Result<Option<String>, BackupError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BackupError::io(path)(e)),
    }
}

fn mtime(meta: &std::fs::Metadata) -> (i64, u32) {
    use std::os::unix::fs::MetadataExt;
    (meta.mtime(), meta.mtime_nsec().clamp(0, 999_999_999) as u32)
}

fn list_files(dir: &Path, new: bool, out: &mut Vec<FileEntry>) -> Result<(), BackupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(BackupError::io(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(BackupError::io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        // A file gone since readdir was renamed or expunged: the caller finds it again or not.
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let (base, info) = split_name(&name);
        out.push(FileEntry {
            base,
            info,
            new,
            size: meta.len(),
            mtime: mtime(&meta),
        });
    }
    Ok(())
}

/// Lists one folder.
pub fn scan_folder(maildir: &Path, dir: &str) -> Result<ScannedFolder, BackupError> {
    let root = maildir.join(dir);
    let mut files = Vec::new();
    list_files(&root.join("new"), true, &mut files)?;
    list_files(&root.join("cur"), false, &mut files)?;
    // A file seen in new/ and then in cur/ during the listing is one message: keep cur/.
    files.sort_by(|a, b| a.base.cmp(&b.base).then(a.new.cmp(&b.new)));
    files.dedup_by(|later, earlier| later.base == earlier.base);
    Ok(ScannedFolder {
        dir: dir.to_string(),
        files,
        uidlist: read_optional(&root.join("dovecot-uidlist"))?.map(|t| parse_uidlist(&t)),
        keywords: read_optional(&root.join("dovecot-keywords"))?,
    })
}

/// Lists every folder of a Maildir (INBOX first, then `.Name` folders by name), and its
/// subscriptions file.
pub fn scan(maildir: &Path) -> Result<(Vec<ScannedFolder>, Option<String>), BackupError> {
    let mut dirs = Vec::new();
    match std::fs::read_dir(maildir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(BackupError::io(maildir))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.')
                    && name.len() > 1
                    && name != ".."
                    && entry.path().join("cur").is_dir()
                {
                    dirs.push(name);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), None)),
        Err(e) => return Err(BackupError::io(maildir)(e)),
    }
    dirs.sort();
    let mut folders = vec![scan_folder(maildir, "")?];
    for d in dirs {
        folders.push(scan_folder(maildir, &d)?);
    }
    Ok((folders, read_optional(&maildir.join("subscriptions"))?))
}

/// Reads a message listed earlier. If it was renamed (flags changed) or moved to `cur/`
/// meanwhile, it is found again by its base name; `None` if it is gone (expunged).
pub fn read_message(
    maildir: &Path,
    dir: &str,
    file: &FileEntry,
) -> Result<Option<(Vec<u8>, FileEntry)>, BackupError> {
    let folder = maildir.join(dir);
    let name = match &file.info {
        Some(i) => format!("{}:{i}", file.base),
        None => file.base.clone(),
    };
    let first = folder
        .join(if file.new { "new" } else { "cur" })
        .join(&name);
    match std::fs::read(&first) {
        Ok(b) => return Ok(Some((b, file.clone()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(BackupError::io(first)(e)),
    }
    // A few tries: a busy client may rename the file again between our listing and read.
    for _ in 0..5 {
        let mut found: Option<(PathBuf, bool)> = None;
        for (sub, new) in [("cur", false), ("new", true)] {
            let d = folder.join(sub);
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for entry in entries.flatten() {
                let n = entry.file_name().to_string_lossy().into_owned();
                if split_name(&n).0 == file.base {
                    found = Some((entry.path(), new));
                    break;
                }
            }
            if found.is_some() {
                break;
            }
        }
        let Some((path, new)) = found else {
            return Ok(None);
        };
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(BackupError::io(path)(e)),
        };
        match std::fs::read(&path) {
            Ok(b) => {
                let n = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let (base, info) = split_name(&n);
                return Ok(Some((
                    b,
                    FileEntry {
                        base,
                        info,
                        new,
                        size: meta.len(),
                        mtime: mtime(&meta),
                    },
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(BackupError::io(path)(e)),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uidlist_is_parsed() {
        let u = parse_uidlist(
            "3 V1732000000 N4 G0123abcd\n1 :1732.M1P2.host,S=10,W=11:2,S\n3 W500 :1733.M2P2.host\nbroken\n",
        );
        assert_eq!(u.uidvalidity, Some(1_732_000_000));
        assert_eq!(u.next_uid, Some(4));
        assert_eq!(u.guid.as_deref(), Some("0123abcd"));
        assert_eq!(u.uids.get("1732.M1P2.host,S=10,W=11"), Some(&1));
        assert_eq!(u.uids.get("1733.M2P2.host"), Some(&3));
        assert_eq!(u.uids.len(), 2);
    }

    #[test]
    fn a_renamed_file_is_found_by_its_base() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path();
        for d in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(md.join(d)).unwrap();
        }
        std::fs::write(md.join("new/123.abc"), b"Subject: x\n\nbody\n").unwrap();
        let folder = scan_folder(md, "").unwrap();
        assert_eq!(folder.files.len(), 1);
        // Dovecot moves it to cur/ and sets \Seen before we read it.
        std::fs::rename(md.join("new/123.abc"), md.join("cur/123.abc:2,S")).unwrap();
        let (bytes, now) = read_message(md, "", &folder.files[0]).unwrap().unwrap();
        assert_eq!(bytes, b"Subject: x\n\nbody\n");
        assert!(!now.new);
        assert_eq!(now.info.as_deref(), Some("2,S"));
        // Expunged: gone, not an error.
        std::fs::remove_file(md.join("cur/123.abc:2,S")).unwrap();
        assert!(read_message(md, "", &folder.files[0]).unwrap().is_none());
    }
}

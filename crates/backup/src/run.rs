//! A backup run: list each account's Maildir, store what is new, and write a snapshot.
//! A message already in the parent snapshot with the same base name, size and mtime is not
//! read again; anything else is read, split into parts and stored (parts already in the
//! repository are not written again).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::error::BackupError;
use crate::id::BlobId;
use crate::lock::Lock;
use crate::maildir;
use crate::repo::{PutStats, Repository};
use crate::snapshot::{AccountEntry, AccountTree, Folder, MessageEntry, Snapshot, new_id};

/// One account to back up.
#[derive(Debug, Clone)]
pub struct Source {
    /// The store it lives on.
    pub server: String,
    /// Its address.
    pub address: String,
    /// Its Maildir.
    pub maildir: PathBuf,
}

/// What a run did (also its progress while it runs).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    /// The snapshot written.
    pub snapshot: String,
    /// Accounts backed up.
    pub accounts: u64,
    /// Messages in the snapshot.
    pub messages: u64,
    /// Their total size.
    pub bytes: u64,
    /// Messages read (new or changed since the parent snapshot).
    pub read_messages: u64,
    /// Bytes read from the stores.
    pub read_bytes: u64,
    /// Messages found unchanged and not read.
    pub unchanged_messages: u64,
    /// Messages listed but gone before they could be read (expunged during the run).
    pub vanished: u64,
    /// Blobs written and bytes written to the repository.
    pub stored: PutStats,
    /// Seconds the run took.
    pub elapsed_secs: f64,
}

impl RunReport {
    /// Bytes of mail per byte written: how much deduplication and compression saved.
    pub fn dedup_ratio(&self) -> f64 {
        if self.stored.stored_bytes == 0 {
            0.0
        } else {
            self.read_bytes as f64 / self.stored.stored_bytes as f64
        }
    }
}

/// What the parent snapshot knew of an account: base name to entry.
fn previous(
    repo: &Repository,
    parent: Option<&Snapshot>,
    address: &str,
) -> HashMap<String, MessageEntry> {
    let Some(entry) = parent.and_then(|p| p.accounts.iter().find(|a| a.address == address)) else {
        return HashMap::new();
    };
    // An unreadable parent tree only costs reading the messages again.
    let Ok(tree) = repo.get_json::<AccountTree>(&entry.tree) else {
        return HashMap::new();
    };
    tree.folders
        .into_iter()
        .flat_map(|f| f.messages)
        .map(|m| (m.base.clone(), m))
        .collect()
}

fn account(
    repo: &Repository,
    source: &Source,
    before: &HashMap<String, MessageEntry>,
    report: &mut RunReport,
    lock: &mut Lock<'_>,
    progress: &mut dyn FnMut(&RunReport),
) -> Result<AccountTree, BackupError> {
    let (scanned, subscriptions) = maildir::scan(&source.maildir)?;
    let mut tree = AccountTree {
        folders: Vec::new(),
        subscriptions,
    };
    for sf in scanned {
        let uidlist = sf.uidlist.clone().unwrap_or_default();
        let mut folder = Folder {
            dir: sf.dir.clone(),
            uidvalidity: uidlist.uidvalidity,
            next_uid: uidlist.next_uid,
            guid: uidlist.guid.clone(),
            keywords: sf.keywords.clone(),
            messages: Vec::new(),
        };
        for file in &sf.files {
            let unchanged = before
                .get(&file.base)
                .filter(|m| m.size == file.size && m.mtime == file.mtime && repo.has(&m.recipe));
            let (file, recipe) = match unchanged {
                Some(m) => {
                    report.unchanged_messages += 1;
                    (file.clone(), m.recipe)
                }
                None => {
                    let Some((bytes, now)) = maildir::read_message(&source.maildir, &sf.dir, file)?
                    else {
                        report.vanished += 1;
                        continue;
                    };
                    report.read_messages += 1;
                    report.read_bytes += bytes.len() as u64;
                    let recipe = crate::recipe::store(repo, &bytes, &mut report.stored)?;
                    let id: BlobId = crate::recipe::save(repo, &recipe, &mut report.stored)?;
                    (
                        maildir::FileEntry {
                            size: bytes.len() as u64,
                            ..now
                        },
                        id,
                    )
                }
            };
            report.messages += 1;
            report.bytes += file.size;
            folder.messages.push(MessageEntry {
                uid: uidlist.uids.get(&file.base).copied(),
                base: file.base,
                info: file.info,
                new: file.new,
                size: file.size,
                mtime: file.mtime,
                recipe,
            });
            if report.messages % 256 == 0 {
                lock.refresh()?;
                progress(report);
            }
        }
        tree.folders.push(folder);
    }
    Ok(tree)
}

/// Backs up the accounts and writes a snapshot; the repository's latest snapshot is the
/// parent that unchanged messages are recognised from.
pub fn run(
    repo: &Repository,
    sources: &[Source],
    progress: &mut dyn FnMut(&RunReport),
) -> Result<(Snapshot, RunReport), BackupError> {
    let started = Instant::now();
    let time = chrono::Utc::now();
    let mut lock = Lock::shared(repo)?;
    repo.reload_index()?;
    let parent = repo.snapshots()?.into_iter().last();
    let mut report = RunReport::default();
    let mut accounts = Vec::new();
    for source in sources {
        let before = previous(repo, parent.as_ref(), &source.address);
        let messages_before = report.messages;
        let bytes_before = report.bytes;
        let tree = account(repo, source, &before, &mut report, &mut lock, progress)?;
        let tree_id = repo.put_json(&tree, &mut report.stored)?;
        accounts.push(AccountEntry {
            server: source.server.clone(),
            address: source.address.clone(),
            tree: tree_id,
            messages: report.messages - messages_before,
            bytes: report.bytes - bytes_before,
        });
        report.accounts += 1;
        progress(&report);
    }
    let snapshot = Snapshot {
        id: new_id(time, &format!("{}", accounts.len())),
        time,
        finished: chrono::Utc::now(),
        parent: parent.map(|p| p.id),
        accounts,
    };
    repo.save_snapshot(&snapshot)?;
    report.snapshot = snapshot.id.clone();
    report.elapsed_secs = started.elapsed().as_secs_f64();
    Ok((snapshot, report))
}

/// Records a run in the status file the monitor's backup check reads (atomically: a
/// temporary file renamed over it), keeping the time of the newest good run.
pub fn write_status(
    path: &std::path::Path,
    run: mailfleet_core::backup_status::BackupRun,
) -> Result<(), BackupError> {
    use mailfleet_core::backup_status::BackupStatus;
    let mut status: BackupStatus = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if run.result == "ok" {
        status.last_success = run.finished;
    }
    status.last_run = Some(run);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(BackupError::io(dir))?;
    }
    let tmp = path.with_extension("tmp");
    let json =
        serde_json::to_vec_pretty(&status).map_err(|e| BackupError::Format(e.to_string()))?;
    std::fs::write(&tmp, json).map_err(BackupError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(BackupError::io(path))
}

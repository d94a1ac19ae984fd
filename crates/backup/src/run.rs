//! A backup run: list each account's Maildir, store what is new, and write a snapshot.
//! A message already in the parent snapshot with the same base name, size and mtime is not
//! read again; anything else is read, split into parts and stored (parts already in the
//! repository are not written again).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
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
    let Ok(tree) = repo.get_json_alone::<AccountTree>(&entry.tree) else {
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
    live: &Live,
) -> Result<AccountTree, BackupError> {
    let (scanned, subscriptions) = maildir::scan(&source.maildir)?;
    // With every index segment read, the parent's blobs are all there (see `index_complete`):
    // an unchanged message costs no lookup.
    let complete = repo.index_complete();
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
            let unchanged = before.get(&file.base).filter(|m| {
                m.size == file.size && m.mtime == file.mtime && (complete || repo.has(&m.recipe))
            });
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
                    live.read_bytes
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
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
            live.messages.fetch_add(1, Ordering::Relaxed);
            folder.messages.push(MessageEntry {
                uid: uidlist.uids.get(&file.base).copied(),
                base: file.base,
                info: file.info,
                new: file.new,
                size: file.size,
                mtime: file.mtime,
                recipe,
            });
        }
        tree.folders.push(folder);
    }
    Ok(tree)
}

/// Counts the workers update as they go, for the progress shown while a big account runs.
#[derive(Default)]
struct Live {
    messages: AtomicU64,
    read_bytes: AtomicU64,
}

/// How often the coordinating thread shows progress and refreshes the lock.
const TICK: Duration = Duration::from_millis(250);

/// What one account's worker hands back: its tree is stored already, so a run holds no
/// message of an account once that account is done.
type Done = (usize, Result<(BlobId, RunReport), BackupError>);

/// Backs up the accounts and writes a snapshot; the repository's latest snapshot is the
/// parent that unchanged messages are recognised from. Accounts are backed up on several
/// threads (listing is stat-bound, new mail is parse- and compression-bound); the snapshot
/// lists them in the order given.
pub fn run(
    repo: &Repository,
    sources: &[Source],
    progress: &mut dyn FnMut(&RunReport),
) -> Result<(Snapshot, RunReport), BackupError> {
    let started = Instant::now();
    let time = chrono::Utc::now();
    let mut servers: Vec<String> = sources.iter().map(|s| s.server.clone()).collect();
    servers.sort();
    servers.dedup();
    let mut lock = Lock::shared(repo, servers)?;
    repo.reload_index()?;
    // Each account's parent is the newest snapshot holding it: stores backed up on their own
    // machines write snapshots of their own accounts only.
    let snapshots = repo.snapshots()?;
    let parent_of = |address: &str| {
        snapshots
            .iter()
            .rev()
            .find(|s| s.accounts.iter().any(|a| a.address == address))
    };
    let parent = snapshots.last().cloned();
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .clamp(1, 4)
        .min(sources.len().max(1));
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let live = Live::default();
    let mut done: Vec<Option<(BlobId, RunReport)>> = vec![None; sources.len()];
    let mut report = RunReport::default();
    let mut failure = None;
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<Done>();
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, stop, live, parent_of) = (&next, &stop, &live, &parent_of);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(source) = sources.get(i) else { break };
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let before = previous(repo, parent_of(&source.address), &source.address);
                    let mut part = RunReport::default();
                    let r = account(repo, source, &before, &mut part, live).and_then(|tree| {
                        drop(before);
                        let id = repo.put_json(&tree, &mut part.stored)?;
                        Ok((id, part))
                    });
                    if r.is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    if tx.send((i, r)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        loop {
            let got = rx.recv_timeout(TICK);
            match got {
                Ok((i, Ok((tree_id, part)))) => {
                    report.accounts += 1;
                    report.messages += part.messages;
                    report.bytes += part.bytes;
                    report.read_messages += part.read_messages;
                    report.read_bytes += part.read_bytes;
                    report.unchanged_messages += part.unchanged_messages;
                    report.vanished += part.vanished;
                    report.stored.new_blobs += part.stored.new_blobs;
                    report.stored.stored_bytes += part.stored.stored_bytes;
                    report.stored.reused_blobs += part.stored.reused_blobs;
                    if let Some(slot) = done.get_mut(i) {
                        *slot = Some((tree_id, part));
                    }
                }
                Ok((_, Err(e))) => {
                    stop.store(true, Ordering::Relaxed);
                    failure.get_or_insert(e);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if let Err(e) = lock.refresh() {
                stop.store(true, Ordering::Relaxed);
                failure.get_or_insert(e);
            }
            let mut shown = report.clone();
            shown.messages = shown.messages.max(live.messages.load(Ordering::Relaxed));
            shown.read_bytes = shown
                .read_bytes
                .max(live.read_bytes.load(Ordering::Relaxed));
            progress(&shown);
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let mut accounts = Vec::with_capacity(sources.len());
    for (source, slot) in sources.iter().zip(done) {
        let Some((tree_id, part)) = slot else {
            return Err(BackupError::Format(format!(
                "{}: its backup ended without a result",
                source.address
            )));
        };
        accounts.push(AccountEntry {
            server: source.server.clone(),
            address: source.address.clone(),
            tree: tree_id,
            messages: part.messages,
            bytes: part.bytes,
        });
    }
    let snapshot = Snapshot {
        id: new_id(time, &format!("{}", accounts.len())),
        time,
        finished: chrono::Utc::now(),
        parent: parent.map(|p| p.id),
        accounts,
    };
    // (sealed here, not in the snapshot's flush, so the report counts their bytes)
    repo.seal_groups(&mut report.stored)?;
    repo.save_snapshot(&snapshot)?;
    // After the snapshot: a dictionary only changes how later runs compress, and the local
    // index file is a cache of what is durable already.
    repo.finish_training();
    repo.settle_index()?;
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

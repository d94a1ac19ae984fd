//! Restoring from a snapshot to a directory: `DIR/DOMAIN/LOCAL/Maildir/...` with every
//! message byte-identical under its original name (flags included), its mtime (the IMAP
//! INTERNALDATE) set back, and `dovecot-uidlist` rewritten with the original UIDs and
//! UIDVALIDITY so clients do not resynchronise.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde::Serialize;

use crate::error::BackupError;
use crate::recipe::Recipe;
use crate::repo::Repository;
use crate::snapshot::{AccountTree, Folder, MessageEntry, Snapshot};

/// Which messages to restore.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// One account (all when `None`).
    pub account: Option<String>,
    /// One folder: `INBOX` or the Maildir++ name (`Sent`, `Lists.rust`).
    pub folder: Option<String>,
    /// Messages with this Message-ID (with or without angle brackets).
    pub message_id: Option<String>,
    /// Messages whose headers or text contain this (case-insensitive).
    pub search: Option<String>,
}

/// What a restore wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreReport {
    /// Accounts restored.
    pub accounts: u64,
    /// Messages written.
    pub messages: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Messages that could not be rebuilt from the repository (damaged or missing data);
    /// everything else was restored.
    pub failed: Vec<FailedMessage>,
}

/// A message a restore could not rebuild.
#[derive(Debug, Clone, Serialize)]
pub struct FailedMessage {
    /// The account.
    pub account: String,
    /// The folder (`INBOX`, `Sent`); empty when the account's folder list itself is damaged.
    pub folder: String,
    /// The message's file name in the snapshot; empty for a damaged folder list.
    pub file: String,
    /// Its Message-ID, when its recipe could still be read.
    pub message_id: Option<String>,
    /// What is damaged.
    pub error: String,
}

impl FailedMessage {
    /// An account none of whose messages could be restored: its folder list is damaged.
    pub(crate) fn folder_list(account: &str, e: &BackupError) -> Self {
        FailedMessage {
            account: account.to_string(),
            folder: String::new(),
            file: String::new(),
            message_id: None,
            error: format!("the account's folder list: {e}"),
        }
    }
}

/// Whether an error is damage to the repository's data (reported per message, the rest
/// restored) rather than a failure of the target or the destination (which stops).
pub(crate) fn is_damage(e: &BackupError) -> bool {
    matches!(e, BackupError::Corrupt(_) | BackupError::NotFound(_))
}

/// A message that could not be rebuilt: its Message-ID when its recipe still reads, and why.
pub(crate) type Unrebuilt = (Option<String>, BackupError);

/// A message rebuilt from its recipe, or, when the repository's data for it is damaged, what
/// can be said of it.
pub(crate) fn rebuild_message(
    repo: &Repository,
    m: &MessageEntry,
) -> Result<Result<Vec<u8>, Unrebuilt>, BackupError> {
    let recipe: Recipe = match crate::recipe::load(repo, &m.recipe) {
        Ok(r) => r,
        Err(e) if is_damage(&e) => return Ok(Err((None, e))),
        Err(e) => return Err(e),
    };
    match crate::recipe::rebuild(repo, &recipe) {
        Ok(raw) => Ok(Ok(raw)),
        Err(e) if is_damage(&e) => Ok(Err((crate::recipe::message_id(&recipe), e))),
        Err(e) => Err(e),
    }
}

/// Whether a message that could not be rebuilt is one the filter asks for, as far as can
/// be told without its content.
pub(crate) fn may_match(filter: &Filter, message_id: Option<&str>) -> bool {
    match (&filter.message_id, message_id) {
        (Some(want), Some(have)) => {
            want.trim().trim_start_matches('<').trim_end_matches('>') == have
        }
        _ => true,
    }
}

/// The IMAP name of a folder directory.
pub fn folder_name(dir: &str) -> String {
    match dir.strip_prefix('.') {
        Some(name) => name.to_string(),
        None => "INBOX".to_string(),
    }
}

pub(crate) fn matches(filter: &Filter, raw: &[u8]) -> bool {
    if filter.message_id.is_none() && filter.search.is_none() {
        return true;
    }
    let Some(msg) = mail_parser::MessageParser::default().parse(raw) else {
        return false;
    };
    if let Some(want) = &filter.message_id {
        let want = want.trim().trim_start_matches('<').trim_end_matches('>');
        if msg.message_id() != Some(want) {
            return false;
        }
    }
    if let Some(text) = &filter.search {
        let needle = text.to_lowercase();
        let root = msg.root_part();
        let headers = raw
            .get(root.offset_header as usize..root.offset_body as usize)
            .map(|h| String::from_utf8_lossy(h).to_lowercase())
            .unwrap_or_default();
        let body: String = (0..msg.text_body.len())
            .filter_map(|i| msg.body_text(i))
            .collect::<Vec<_>>()
            .join("\n")
            .to_lowercase();
        if !headers.contains(&needle) && !body.contains(&needle) {
            return false;
        }
    }
    true
}

fn write_message(path: &Path, raw: &[u8], mtime: (i64, u32)) -> Result<(), BackupError> {
    use std::io::Write as _;
    let when = std::time::UNIX_EPOCH
        + std::time::Duration::new(mtime.0.max(0) as u64, mtime.1.min(999_999_999));
    let mut f = std::fs::File::create(path).map_err(BackupError::io(path))?;
    f.write_all(raw).map_err(BackupError::io(path))?;
    f.set_times(
        std::fs::FileTimes::new()
            .set_modified(when)
            .set_accessed(when),
    )
    .map_err(BackupError::io(path))
}

fn uidlist(folder: &Folder, written: &[&MessageEntry]) -> Option<String> {
    let validity = folder.uidvalidity?;
    let mut with_uid: Vec<&&MessageEntry> = written.iter().filter(|m| m.uid.is_some()).collect();
    with_uid.sort_by_key(|m| m.uid);
    let next = folder
        .next_uid
        .or_else(|| with_uid.last().and_then(|m| m.uid).map(|u| u + 1))
        .unwrap_or(1);
    let mut s = format!("3 V{validity} N{next}");
    if let Some(g) = &folder.guid {
        let _ = write!(s, " G{g}");
    }
    s.push('\n');
    for m in with_uid {
        let _ = writeln!(s, "{} :{}", m.uid.unwrap_or(0), m.file_name());
    }
    Some(s)
}

fn restore_folder(
    repo: &Repository,
    account: &str,
    folder: &Folder,
    root: &Path,
    filter: &Filter,
    report: &mut RestoreReport,
) -> Result<(), BackupError> {
    let dir = root.join(&folder.dir);
    for sub in ["cur", "new", "tmp"] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).map_err(BackupError::io(&d))?;
    }
    if !folder.dir.is_empty() {
        let marker = dir.join("maildirfolder");
        std::fs::write(&marker, b"").map_err(BackupError::io(&marker))?;
    }
    let mut written = Vec::new();
    for m in &folder.messages {
        let raw = match rebuild_message(repo, m)? {
            Ok(raw) => raw,
            Err((message_id, e)) => {
                if may_match(filter, message_id.as_deref()) {
                    report.failed.push(FailedMessage {
                        account: account.to_string(),
                        folder: folder_name(&folder.dir),
                        file: m.file_name(),
                        message_id,
                        error: e.to_string(),
                    });
                }
                continue;
            }
        };
        if !matches(filter, &raw) {
            continue;
        }
        let path = dir
            .join(if m.new { "new" } else { "cur" })
            .join(m.file_name());
        write_message(&path, &raw, m.mtime)?;
        report.messages += 1;
        report.bytes += raw.len() as u64;
        written.push(m);
    }
    for (name, content) in [
        ("dovecot-uidlist", uidlist(folder, &written)),
        ("dovecot-keywords", folder.keywords.clone()),
    ] {
        if let Some(c) = content {
            let p = dir.join(name);
            std::fs::write(&p, c).map_err(BackupError::io(&p))?;
        }
    }
    Ok(())
}

/// Where an account's Maildir goes under `dir`.
pub fn account_dir(dir: &Path, address: &str) -> PathBuf {
    match address.split_once('@') {
        Some((local, domain)) => dir.join(domain).join(local).join("Maildir"),
        None => dir.join(address).join("Maildir"),
    }
}

/// Restores the snapshot's matching messages under `dir`.
pub fn to_dir(
    repo: &Repository,
    snapshot: &Snapshot,
    filter: &Filter,
    dir: &Path,
) -> Result<RestoreReport, BackupError> {
    let mut report = RestoreReport::default();
    let accounts: Vec<_> = snapshot
        .accounts
        .iter()
        .filter(|a| {
            filter
                .account
                .as_ref()
                .is_none_or(|want| &a.address == want)
        })
        .collect();
    if accounts.is_empty()
        && let Some(a) = &filter.account
    {
        return Err(BackupError::NotFound(format!(
            "snapshot {} holds no account {a}",
            snapshot.id
        )));
    }
    // File creation dominates a restore (each create waits on the file system's journal), so
    // accounts are written by several threads.
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .clamp(2, 8)
        .min(accounts.len().max(1));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Vec<Result<RestoreReport, BackupError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut part = RestoreReport::default();
                    while let Some(a) = accounts.get(next.fetch_add(1, Ordering::Relaxed)) {
                        if failed.load(Ordering::Relaxed) {
                            break;
                        }
                        if let Err(e) = restore_account(repo, a, filter, dir, &mut part) {
                            failed.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                    Ok(part)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| {
                    Err(BackupError::Format("a restore thread panicked".into()))
                })
            })
            .collect()
    });
    for r in results {
        let part = r?;
        report.accounts += part.accounts;
        report.messages += part.messages;
        report.bytes += part.bytes;
        report.failed.extend(part.failed);
    }
    report
        .failed
        .sort_by(|a, b| (&a.account, &a.folder, &a.file).cmp(&(&b.account, &b.folder, &b.file)));
    Ok(report)
}

fn restore_account(
    repo: &Repository,
    a: &crate::snapshot::AccountEntry,
    filter: &Filter,
    dir: &Path,
    report: &mut RestoreReport,
) -> Result<(), BackupError> {
    let tree: AccountTree = match repo.get_json(&a.tree) {
        Ok(t) => t,
        Err(e) if is_damage(&e) => {
            report
                .failed
                .push(FailedMessage::folder_list(&a.address, &e));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let root = account_dir(dir, &a.address);
    std::fs::create_dir_all(&root).map_err(BackupError::io(&root))?;
    for folder in &tree.folders {
        if let Some(want) = &filter.folder
            && !folder_name(&folder.dir).eq_ignore_ascii_case(want)
        {
            continue;
        }
        restore_folder(repo, &a.address, folder, &root, filter, report)?;
    }
    if filter.folder.is_none()
        && let Some(subs) = &tree.subscriptions
    {
        let p = root.join("subscriptions");
        std::fs::write(&p, subs).map_err(BackupError::io(&p))?;
    }
    report.accounts += 1;
    Ok(())
}

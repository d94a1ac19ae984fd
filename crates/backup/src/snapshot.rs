//! What a snapshot records: per account a tree (folders, their UIDVALIDITY and next UID,
//! keywords and subscriptions, and every message's Maildir name, flags, UID, size, mtime and
//! recipe). Trees are blobs themselves, so an unchanged account costs nothing new.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::BlobId;

/// One snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// Its id: the time and a hash, sortable.
    pub id: String,
    /// When the run started.
    pub time: DateTime<Utc>,
    /// When it finished.
    pub finished: DateTime<Utc>,
    /// The snapshot the run compared against, if any.
    pub parent: Option<String>,
    /// The accounts it holds.
    pub accounts: Vec<AccountEntry>,
}

/// One account in a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountEntry {
    /// The store it was read from.
    pub server: String,
    /// The address.
    pub address: String,
    /// Its [`AccountTree`] blob.
    pub tree: BlobId,
    /// Messages in it.
    pub messages: u64,
    /// Their total size.
    pub bytes: u64,
}

/// One account's mailbox.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountTree {
    /// Its folders, INBOX first.
    pub folders: Vec<Folder>,
    /// The `subscriptions` file, verbatim.
    pub subscriptions: Option<String>,
}

/// One Maildir folder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Folder {
    /// The directory under `Maildir/`: empty for INBOX, `.Sent`, `.Lists.rust`...
    pub dir: String,
    /// From `dovecot-uidlist`, when it was readable.
    pub uidvalidity: Option<u32>,
    /// The next UID Dovecot would assign.
    pub next_uid: Option<u32>,
    /// The mailbox GUID (`G` field), if any.
    pub guid: Option<String>,
    /// The `dovecot-keywords` file, verbatim (keyword letters in file names map through it).
    pub keywords: Option<String>,
    /// The messages.
    pub messages: Vec<MessageEntry>,
}

/// One message file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageEntry {
    /// The file name up to `:` (stable across flag changes and new/ to cur/).
    pub base: String,
    /// What followed `:` (`2,FS`), if anything.
    pub info: Option<String>,
    /// In `new/` (not yet seen by a client) rather than `cur/`.
    pub new: bool,
    /// Its UID, when `dovecot-uidlist` lists it.
    pub uid: Option<u32>,
    /// Size in bytes.
    pub size: u64,
    /// Modification time (the IMAP INTERNALDATE), seconds and nanoseconds since the epoch.
    pub mtime: (i64, u32),
    /// The message's recipe blob.
    pub recipe: BlobId,
}

impl MessageEntry {
    /// The file name as Maildir has it.
    pub fn file_name(&self) -> String {
        match &self.info {
            Some(i) => format!("{}:{i}", self.base),
            None => self.base.clone(),
        }
    }

    /// The flag letters (`S`, `F`...; lower-case letters are keywords).
    pub fn flags(&self) -> &str {
        self.info
            .as_deref()
            .and_then(|i| i.strip_prefix("2,"))
            .unwrap_or("")
    }
}

/// A snapshot id for a run starting at `time`.
pub fn new_id(time: DateTime<Utc>, salt: &str) -> String {
    let hash = BlobId::of(format!("{time:?}{salt}{}", std::process::id()).as_bytes());
    format!("{}-{}", time.format("%Y%m%dT%H%M%SZ"), &hash.hex()[..8])
}

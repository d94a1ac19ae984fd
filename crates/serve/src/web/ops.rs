//! What the dashboard's buttons do, given by its caller (the serve crate depends on no
//! capability): the policy's state (senders, held mail, blocks, DNSBL hits), held mail
//! released and purged, blocks lifted; a backup run now; the monitor's history.

use chrono::{DateTime, Utc};
use mailfleet_core::series::Series;
use serde::Serialize;

/// One held message.
#[derive(Debug, Clone, Serialize)]
pub struct HeldRow {
    /// The sender's account (its quota key).
    pub account: String,
    /// Its Postfix queue ID.
    pub queue_id: String,
    /// The MTA holding it, when known.
    pub mta: Option<String>,
    /// When it was held.
    pub held_at: Option<DateTime<Utc>>,
    /// Its recipients.
    pub recipients: u64,
}

/// One sender's use of its quota window.
#[derive(Debug, Clone, Serialize)]
pub struct SenderRow {
    /// The account.
    pub account: String,
    /// Messages in the window.
    pub messages: u64,
    /// Recipients in the window.
    pub recipients: u64,
    /// Its rule's message limit, if one applies.
    pub limit: Option<u64>,
}

/// A send-blocked account.
#[derive(Debug, Clone, Serialize)]
pub struct BlockRow {
    /// The account.
    pub account: String,
    /// Why.
    pub reason: String,
    /// Since when (RFC 3339).
    pub since: String,
}

/// One DNSBL's hits.
#[derive(Debug, Clone, Serialize)]
pub struct DnsblRow {
    /// The list's zone.
    pub zone: String,
    /// Lookups that found the client listed.
    pub hits: u64,
    /// Distinct addresses found listed.
    pub unique: u64,
}

/// The policy's state as its page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyView {
    /// The quota window in seconds.
    pub window_secs: u64,
    /// Senders with use in the window, most first.
    pub senders: Vec<SenderRow>,
    /// Every held message, oldest first.
    pub held: Vec<HeldRow>,
    /// Send-blocked accounts.
    pub blocked: Vec<BlockRow>,
    /// Hits per DNSBL.
    pub dnsbl: Vec<DnsblRow>,
}

/// One snapshot in the backup repository.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotRow {
    /// Its id.
    pub id: String,
    /// When its run started.
    pub time: DateTime<Utc>,
    /// When it finished.
    pub finished: DateTime<Utc>,
    /// Accounts it holds.
    pub accounts: u64,
    /// Messages it holds.
    pub messages: u64,
    /// Their size.
    pub bytes: u64,
}

/// A snapshot that cannot be read.
#[derive(Debug, Clone, Serialize)]
pub struct DamagedRow {
    /// Its id.
    pub id: String,
    /// Why.
    pub error: String,
}

/// The backup repository as its page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RepoView {
    /// Where it is (`[backup] repository`).
    pub repository: String,
    /// Its snapshots, oldest first.
    pub snapshots: Vec<SnapshotRow>,
    /// Those that cannot be read.
    pub damaged: Vec<DamagedRow>,
    /// Blobs stored.
    pub blobs: u64,
    /// Bytes they take.
    pub stored_bytes: u64,
}

impl RepoView {
    /// The mail all snapshots hold over the bytes stored: what deduplication saves.
    pub fn dedup_ratio(&self) -> Option<f64> {
        let held: u64 = self.snapshots.iter().map(|s| s.bytes).sum();
        (self.stored_bytes > 0).then(|| held as f64 / self.stored_bytes as f64)
    }
}

/// The actions and the data behind them.
#[async_trait::async_trait]
pub trait Ops: Send + Sync {
    /// Top senders, held mail, blocks and DNSBL hits.
    async fn policy(&self) -> Result<PolicyView, String>;
    /// Lifts `account`'s send block; what it did.
    async fn unblock(&self, account: &str) -> Result<String, String>;
    /// Releases `account`'s held mail now; what it did.
    async fn release(&self, account: &str) -> Result<String, String>;
    /// Deletes `account`'s held mail; what it did.
    async fn purge(&self, account: &str) -> Result<String, String>;
    /// The backup repository's snapshots and what it stores.
    async fn repository(&self) -> Result<RepoView, String>;
    /// Backs every store up now; what it did.
    async fn backup(&self) -> Result<String, String>;
    /// The monitor's history of each of `families` over `since..until` in `spans` spans.
    async fn history(
        &self,
        families: Vec<String>,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        spans: u32,
    ) -> Result<Vec<Vec<Series>>, String>;
}

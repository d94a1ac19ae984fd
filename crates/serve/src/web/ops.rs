//! What the dashboard's buttons do, given by its caller (the serve crate depends on no
//! capability): the policy's state (senders, held mail, blocks, DNSBL hits), held mail
//! released and purged, blocks lifted; a backup run now; the monitor's history; upgrade
//! runs and plans, moves (their runs are the daemon's, see [`crate::runs`]).

use chrono::{DateTime, Utc};
use mailfleet_core::series::Series;
use mailfleet_notify::record::{ActiveAlarm, AlarmRecord};
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

/// One server's step of an upgrade run.
#[derive(Debug, Clone, Serialize)]
pub struct UpgradeStepRow {
    /// Its place in the order.
    pub n: usize,
    /// The server.
    pub server: String,
    /// Where it is (`pending`, `gated`, `updated`, ..., `done`).
    pub phase: String,
    /// When it started.
    pub started: Option<DateTime<Utc>>,
    /// When it ended.
    pub ended: Option<DateTime<Utc>>,
    /// Why it failed.
    pub error: Option<String>,
}

/// An upgrade run as its page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct UpgradeView {
    /// Its number.
    pub id: i64,
    /// When it was started.
    pub created: DateTime<Utc>,
    /// `running`, `halted`, `aborted` or `done`.
    pub state: String,
    /// Why it halted or was aborted.
    pub reason: Option<String>,
    /// The packages it updates (empty: every update offered).
    pub packages: Vec<String>,
    /// Whether it was asked to stop after its current step.
    pub abort_requested: bool,
    /// Whether a live process runs it now.
    pub running: bool,
    /// Its steps, in order.
    pub steps: Vec<UpgradeStepRow>,
}

impl UpgradeView {
    /// When it should end: the steps left, each taking as long as the finished ones did on
    /// average (`None` before one finished, or when none is left).
    pub fn eta(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let took: Vec<i64> = self
            .steps
            .iter()
            .filter(|s| s.phase == "done")
            .filter_map(|s| Some((s.ended? - s.started?).num_seconds()))
            .collect();
        let left = self.steps.iter().filter(|s| s.phase != "done").count() as i64;
        if took.is_empty() || left == 0 || self.state != "running" {
            return None;
        }
        let mean = took.iter().sum::<i64>() / took.len() as i64;
        Some(now + chrono::Duration::seconds(mean * left))
    }
}

/// One server's place in an upgrade plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanStepRow {
    /// Its place in the order.
    pub n: usize,
    /// The server.
    pub server: String,
    /// Why it goes there.
    pub why: String,
    /// What must hold before it is touched.
    pub before: Vec<String>,
    /// How it is emptied first.
    pub drain: Option<String>,
    /// What must hold after its update.
    pub after: Vec<String>,
    /// When it starts at the earliest.
    pub start: DateTime<Utc>,
    /// Why not at once.
    pub waits: Vec<String>,
}

/// An upgrade plan as its page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PlanView {
    /// The servers asked for (empty: all).
    pub servers: Vec<String>,
    /// The packages (empty: every update offered).
    pub packages: Vec<String>,
    /// Its steps, in order.
    pub steps: Vec<PlanStepRow>,
    /// When the last step ends at the earliest.
    pub ends: DateTime<Utc>,
    /// What an admin should know.
    pub warnings: Vec<String>,
}

/// One move of the journal.
#[derive(Debug, Clone, Serialize)]
pub struct MoveRow {
    /// Its number.
    pub id: i64,
    /// Its batch.
    pub batch: i64,
    /// The account.
    pub address: String,
    /// Where it was.
    pub source: String,
    /// Where it goes.
    pub target: String,
    /// Where the move is (`planned`, `copying`, ..., `done`, `failed`, `aborted`).
    pub phase: String,
    /// Whether it is over.
    pub over: bool,
    /// Copy passes run.
    pub passes: u32,
    /// Messages when planned.
    pub messages: u64,
    /// Bytes when planned.
    pub bytes: u64,
    /// How long the account was locked (ms).
    pub lock_ms: Option<f64>,
    /// Why it failed.
    pub error: Option<String>,
    /// What it waits for.
    pub waiting: Option<String>,
}

/// The moves as their page shows them: the latest batch and every open move.
#[derive(Debug, Clone, Serialize)]
pub struct MovesView {
    /// The moves, oldest first.
    pub moves: Vec<MoveRow>,
    /// Bytes per second of the first passes.
    pub rate: Option<f64>,
    /// Bytes left to copy.
    pub remaining_bytes: u64,
    /// The time they need at that rate (s).
    pub eta_secs: Option<f64>,
    /// The fleet's stores, for the page's forms.
    pub stores: Vec<String>,
}

/// What a move plan is asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct MoveAsk {
    /// Accounts to move.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Where they go (empty: placed by weight and free space).
    pub to: Option<String>,
    /// A store to drain.
    pub drain: Option<String>,
    /// A store to give back what a drain took.
    pub back: Option<String>,
}

/// One account's planned move.
#[derive(Debug, Clone, Serialize)]
pub struct PlacementRow {
    /// The account.
    pub address: String,
    /// Where it is.
    pub source: String,
    /// Where it goes.
    pub target: String,
    /// Its messages.
    pub messages: u64,
    /// Its bytes.
    pub bytes: u64,
    /// Why there.
    pub why: String,
}

/// A store as a move plan saw it.
#[derive(Debug, Clone, Serialize)]
pub struct StoreRow {
    /// The store.
    pub name: String,
    /// Free on it now (bytes), when read.
    pub available: Option<u64>,
    /// What must stay free (bytes).
    pub keep_free: u64,
    /// What the plan puts on it (bytes).
    pub incoming: u64,
    /// Why it takes no accounts, if it does not.
    pub excluded: Option<String>,
}

/// A move plan as the moves page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MovePlanView {
    /// What was asked.
    pub ask: MoveAsk,
    /// The command it is (`move drain store1`).
    pub what: String,
    /// The moves.
    pub moves: Vec<PlacementRow>,
    /// Accounts left out, and why.
    pub skipped: Vec<(String, String)>,
    /// Accounts that cannot be placed, and why: nothing runs while there are any.
    pub refused: Vec<(String, String)>,
    /// The stores considered.
    pub stores: Vec<StoreRow>,
}

/// The alarms as their page shows them.
#[derive(Debug, Clone, Serialize)]
pub struct AlarmsView {
    /// Those that hold, by server and check.
    pub active: Vec<ActiveAlarm>,
    /// Every alarm kept, newest first.
    pub past: Vec<AlarmRecord>,
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
    /// The latest upgrade run, if any.
    async fn upgrade(&self) -> Result<Option<UpgradeView>, String>;
    /// Asks upgrade run `id`, run by a live process, to stop after its current step.
    async fn stop_upgrade(&self, id: i64) -> Result<String, String>;
    /// Ends halted upgrade run `id`, which no process runs: the servers not upgraded are
    /// unmarked.
    async fn abort_upgrade(&self, id: i64) -> Result<String, String>;
    /// The upgrade plan of `servers` (empty: all) for `packages` (empty: all offered).
    async fn upgrade_plan(
        &self,
        servers: Vec<String>,
        packages: Vec<String>,
    ) -> Result<PlanView, String>;
    /// The latest batch of moves and every move not over.
    async fn moves(&self) -> Result<MovesView, String>;
    /// What `ask` would move where, moving nothing.
    async fn move_plan(&self, ask: MoveAsk) -> Result<MovePlanView, String>;
    /// The monitor's alarms, holding and past.
    async fn alarms(&self) -> Result<AlarmsView, String>;
    /// The monitor's history of each of `families` over `since..until` in `spans` spans.
    async fn history(
        &self,
        families: Vec<String>,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        spans: u32,
    ) -> Result<Vec<Vec<Series>>, String>;
}

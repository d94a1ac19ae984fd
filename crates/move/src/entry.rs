//! One account's move as the journal records it.

use crate::phase::Phase;

/// One account's move as recorded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    /// Its number in the journal.
    pub id: i64,
    /// The batch it belongs to.
    pub batch: i64,
    /// The account.
    pub address: String,
    /// Where it was when the move was planned.
    pub source: String,
    /// Where it goes.
    pub target: String,
    /// Where the move is.
    pub phase: Phase,
    /// Copy passes run.
    pub passes: u32,
    /// The copy state after the last pass (doveadm's, for the next incremental pass).
    #[serde(skip)]
    pub sync_state: String,
    /// How long the last pass took (ms).
    pub last_pass_ms: Option<f64>,
    /// How long the first pass took (ms): the copy rate comes from it.
    pub first_pass_ms: Option<f64>,
    /// Messages in the mailbox when planned.
    pub messages: u64,
    /// Its size when planned (bytes, as the source store counts them).
    pub bytes: u64,
    /// When the lock began (Unix ms).
    pub lock_started_ms: Option<i64>,
    /// How long the lock lasted (ms), once it is over.
    pub lock_ms: Option<f64>,
    /// Why it failed.
    pub error: Option<String>,
    /// What it waits for before its next pass (a store's load above the limit), while it
    /// waits.
    pub waiting: Option<String>,
    /// The process running it, if one is.
    pub owner: Option<u32>,
    /// The source's copy as verified, for finding late writes to it (see [`crate::purge`]).
    #[serde(skip)]
    pub old_digest: Option<String>,
    /// When the old copy was deleted (Unix s).
    pub purged: Option<i64>,
    /// When it was planned (Unix s).
    pub created: i64,
    /// Its last change (Unix s).
    pub updated: i64,
}

impl Entry {
    /// Bytes per second of the first pass, once there was one.
    pub fn rate(&self) -> Option<f64> {
        self.first_pass_ms
            .filter(|ms| *ms > 0.0)
            .map(|ms| self.bytes as f64 / (ms / 1000.0))
    }
}

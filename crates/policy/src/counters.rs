//! Sliding-window counters per sender, and the record of mail held for being over quota.
//! The trait has one implementation per state backend: [`crate::embedded`] (in memory,
//! persisted in SQLite so a restart keeps quotas) and Redis (shared between MTAs).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::PolicyError;

/// What one message adds to a sender's usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Messages (one per message, whatever its recipients).
    pub messages: u64,
    /// Recipients.
    pub recipients: u64,
    /// Bytes.
    pub bytes: u64,
}

impl Usage {
    /// One message with this many recipients and bytes.
    pub fn message(recipients: u64, bytes: u64) -> Self {
        Usage {
            messages: 1,
            recipients,
            bytes,
        }
    }

    /// The sum of two usages.
    pub fn plus(self, o: Usage) -> Usage {
        Usage {
            messages: self.messages + o.messages,
            recipients: self.recipients + o.recipients,
            bytes: self.bytes + o.bytes,
        }
    }
}

/// Limits per window (`None`: no limit on that count).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Messages.
    pub messages: Option<u64>,
    /// Recipients.
    pub recipients: Option<u64>,
    /// Bytes.
    pub bytes: Option<u64>,
}

impl Limits {
    /// Which limit `usage` goes over, if any.
    pub fn exceeded(&self, usage: Usage) -> Option<&'static str> {
        let over = |limit: Option<u64>, v: u64| limit.is_some_and(|l| v > l);
        if over(self.messages, usage.messages) {
            Some("messages")
        } else if over(self.recipients, usage.recipients) {
            Some("recipients")
        } else if over(self.bytes, usage.bytes) {
            Some("bytes")
        } else {
            None
        }
    }
}

/// A message on hold for being over quota, waiting for release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// The MTA whose hold queue holds it (the holding server's `[policy] mta`); `None` for a
    /// server without one, and for records written before records named their MTA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mta: Option<String>,
    /// Its Postfix queue ID (unique on its MTA only).
    pub queue_id: String,
    /// The quota key (sender).
    pub key: String,
    /// When it was held (ms since the epoch).
    pub at_ms: u64,
    /// What it will count when released.
    pub usage: Usage,
}

/// Counters and held-mail records.
#[async_trait]
pub trait Counters: Send + Sync {
    /// Adds `add` to `key`'s usage if the window's usage plus `add` stays within `limits`;
    /// returns whether it did and the usage before. Atomic: two MTAs asking at once for the
    /// last slot cannot both get it.
    async fn try_add(
        &self,
        key: &str,
        now_ms: u64,
        window_ms: u64,
        add: Usage,
        limits: Limits,
    ) -> Result<(bool, Usage), PolicyError> {
        self.try_add_tagged(key, now_ms, window_ms, add, limits, None)
            .await
    }
    /// [`Counters::try_add`], remembering the message's queue ID so the count can be
    /// refunded if Postfix rejects the message after all.
    async fn try_add_tagged(
        &self,
        key: &str,
        now_ms: u64,
        window_ms: u64,
        add: Usage,
        limits: Limits,
        queue_id: Option<&str>,
    ) -> Result<(bool, Usage), PolicyError>;
    /// Takes back what the message with this queue ID added to `key`'s usage.
    async fn refund(&self, key: &str, queue_id: &str) -> Result<(), PolicyError>;
    /// The usage in the window ending now.
    async fn usage(&self, key: &str, now_ms: u64, window_ms: u64) -> Result<Usage, PolicyError>;
    /// Forgets `key`'s usage, for every process sharing the state.
    async fn reset(&self, key: &str) -> Result<(), PolicyError>;
    /// Records a held message.
    async fn hold(&self, held: &Held) -> Result<(), PolicyError>;
    /// Held messages, oldest first (of one key, or all).
    async fn held(&self, key: Option<&str>) -> Result<Vec<Held>, PolicyError>;
    /// Forgets a held message (released, purged, or gone from its MTA's queue).
    async fn unhold(&self, held: &Held) -> Result<(), PolicyError>;
    /// Applies requests made by other processes (`policy reset` while the server runs).
    async fn poll_requests(&self) -> Result<(), PolicyError> {
        Ok(())
    }
    /// Whether the store answers (asked once a second while it is failing).
    async fn ping(&self) -> Result<(), PolicyError> {
        Ok(())
    }
    /// Waits until every change made so far is stored (a command exiting right after one).
    async fn flush(&self) -> Result<(), PolicyError> {
        Ok(())
    }
    /// The fingerprint of the password hash an account had when it was blocked.
    async fn block_fingerprint(&self, address: &str) -> Result<Option<String>, PolicyError>;
    /// Records (or, with `None`, forgets) that fingerprint.
    async fn set_block_fingerprint(
        &self,
        address: &str,
        fingerprint: Option<&str>,
    ) -> Result<(), PolicyError>;
    /// Every key with usage in the window, with it (for status).
    async fn all_usage(
        &self,
        now_ms: u64,
        window_ms: u64,
    ) -> Result<Vec<(String, Usage)>, PolicyError>;
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

/// A fingerprint of a password hash (so the state never holds the hash itself).
pub fn fingerprint(password_hash: Option<&str>) -> String {
    blake3::hash(password_hash.unwrap_or("").as_bytes()).to_hex()[..32].to_string()
}

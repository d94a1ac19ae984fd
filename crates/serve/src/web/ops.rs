//! What the dashboard's buttons do, given by its caller (the serve crate depends on no
//! capability): held mail listed, released and purged; a backup run now.

use chrono::{DateTime, Utc};
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

/// The actions and the data behind them.
#[async_trait::async_trait]
pub trait Ops: Send + Sync {
    /// Every held message, oldest first.
    async fn held(&self) -> Result<Vec<HeldRow>, String>;
    /// Releases `account`'s held mail now; what it did.
    async fn release(&self, account: &str) -> Result<String, String>;
    /// Deletes `account`'s held mail; what it did.
    async fn purge(&self, account: &str) -> Result<String, String>;
    /// Backs every store up now; what it did.
    async fn backup(&self) -> Result<String, String>;
}

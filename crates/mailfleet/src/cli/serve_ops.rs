//! The dashboard's actions wired to their libraries: held mail from the policy state,
//! released or purged through the MTAs; a backup of every store now.

use mailfleet_core::Config;
use mailfleet_serve::web::ops::{HeldRow, Ops};

/// The actions over one loaded config.
pub(crate) struct Wired {
    pub(crate) config: Config,
}

#[async_trait::async_trait]
impl Ops for Wired {
    async fn held(&self) -> Result<Vec<HeldRow>, String> {
        let held = mailfleet_policy::admin::held(&self.config, None)
            .await
            .map_err(|e| e.to_string())?;
        Ok(held
            .into_iter()
            .map(|h| HeldRow {
                account: h.key,
                queue_id: h.queue_id,
                mta: h.mta,
                held_at: chrono::DateTime::from_timestamp_millis(h.at_ms as i64),
                recipients: h.usage.recipients,
            })
            .collect())
    }

    async fn release(&self, account: &str) -> Result<String, String> {
        let ids = mailfleet_policy::admin::release(&self.config, account)
            .await
            .map_err(|e| e.to_string())?;
        Ok(format!("{} messages of {account} released", ids.len()))
    }

    async fn purge(&self, account: &str) -> Result<String, String> {
        let ids = mailfleet_policy::admin::purge(&self.config, account)
            .await
            .map_err(|e| e.to_string())?;
        Ok(format!("{} messages of {account} purged", ids.len()))
    }

    async fn backup(&self) -> Result<String, String> {
        super::backup_now::backup_now(&self.config, Vec::new()).await
    }
}

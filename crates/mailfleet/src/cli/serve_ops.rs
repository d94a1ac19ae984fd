//! The dashboard's actions wired to their libraries: the policy's state, held mail released
//! or purged through the MTAs, blocks lifted in the directory; a backup of every store now;
//! the monitor's history and alarms; upgrades and moves (in `serve_ops_runs`).

use mailfleet_core::Config;
use mailfleet_core::series::Series;
use mailfleet_serve::web::ops::{
    AlarmsView, BlockRow, DamagedRow, DnsblRow, HeldRow, MoveAsk, MovePlanView, MovesView, Ops,
    PlanView, PolicyView, RepoView, SenderRow, SnapshotRow, UpgradeView,
};

use super::serve_ops_runs as runs;

/// The actions over one loaded config.
pub(crate) struct Wired {
    pub(crate) config: Config,
}

#[async_trait::async_trait]
impl Ops for Wired {
    async fn policy(&self) -> Result<PolicyView, String> {
        let status = mailfleet_policy::admin::status(&self.config)
            .await
            .map_err(|e| e.to_string())?;
        let held = mailfleet_policy::admin::held(&self.config, None)
            .await
            .map_err(|e| e.to_string())?;
        Ok(PolicyView {
            window_secs: status.window_secs,
            senders: status
                .senders
                .into_iter()
                .map(|s| SenderRow {
                    account: s.account,
                    messages: s.usage.messages,
                    recipients: s.usage.recipients,
                    limit: s.limit_messages,
                })
                .collect(),
            held: held
                .into_iter()
                .map(|h| HeldRow {
                    account: h.key,
                    queue_id: h.queue_id,
                    mta: h.mta,
                    held_at: chrono::DateTime::from_timestamp_millis(h.at_ms as i64),
                    recipients: h.usage.recipients,
                })
                .collect(),
            blocked: status
                .blocked
                .into_iter()
                .map(|b| BlockRow {
                    account: b.address,
                    reason: b.reason,
                    since: b.since,
                })
                .collect(),
            dnsbl: status
                .dnsbl
                .into_iter()
                .map(|d| DnsblRow {
                    zone: d.zone,
                    hits: d.hits,
                    unique: d.unique,
                })
                .collect(),
        })
    }

    async fn unblock(&self, account: &str) -> Result<String, String> {
        mailfleet_policy::admin::unblock(&self.config, account)
            .await
            .map_err(|e| e.to_string())?;
        Ok(format!("{account} may send again"))
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

    async fn repository(&self) -> Result<RepoView, String> {
        let s = mailfleet_backup::command::repo::summary(&self.config)
            .await
            .map_err(|e| e.to_string())?;
        Ok(RepoView {
            repository: self.config.backup.repository.to_string(),
            snapshots: s
                .listing
                .intact
                .into_iter()
                .map(|s| SnapshotRow {
                    accounts: s.accounts.len() as u64,
                    messages: s.accounts.iter().map(|a| a.messages).sum(),
                    bytes: s.accounts.iter().map(|a| a.bytes).sum(),
                    id: s.id,
                    time: s.time,
                    finished: s.finished,
                })
                .collect(),
            damaged: s
                .listing
                .damaged
                .into_iter()
                .map(|d| DamagedRow {
                    id: d.id,
                    error: d.error,
                })
                .collect(),
            blobs: s.blobs,
            stored_bytes: s.stored_bytes,
        })
    }

    async fn upgrade(&self) -> Result<Option<UpgradeView>, String> {
        runs::upgrade(&self.config).await
    }

    async fn stop_upgrade(&self, id: i64) -> Result<String, String> {
        runs::stop_upgrade(&self.config, id).await
    }

    async fn abort_upgrade(&self, id: i64) -> Result<String, String> {
        runs::abort_upgrade(&self.config, id).await
    }

    async fn upgrade_plan(
        &self,
        servers: Vec<String>,
        packages: Vec<String>,
    ) -> Result<PlanView, String> {
        runs::upgrade_plan(&self.config, servers, packages).await
    }

    async fn moves(&self) -> Result<MovesView, String> {
        runs::moves(&self.config).await
    }

    async fn move_plan(&self, ask: MoveAsk) -> Result<MovePlanView, String> {
        runs::move_plan(&self.config, ask).await
    }

    async fn alarms(&self) -> Result<AlarmsView, String> {
        let data_dir = self.config.data_dir.clone();
        // SQLite reads block: off the async threads.
        tokio::task::spawn_blocking(move || {
            let h =
                mailfleet_probe::history::History::open(&data_dir).map_err(|e| e.to_string())?;
            let mut past = h.alarms().map_err(|e| e.to_string())?;
            let active = mailfleet_notify::record::active(&past);
            past.reverse();
            Ok(AlarmsView { active, past })
        })
        .await
        .map_err(|e| format!("reading the alarms: {e}"))?
    }

    async fn backup(&self) -> Result<String, String> {
        super::backup_now::backup_now(&self.config, Vec::new()).await
    }

    async fn history(
        &self,
        families: Vec<String>,
        since: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
        spans: u32,
    ) -> Result<Vec<Vec<Series>>, String> {
        let data_dir = self.config.data_dir.clone();
        // SQLite reads block: off the async threads.
        tokio::task::spawn_blocking(move || {
            let h =
                mailfleet_probe::history::History::open(&data_dir).map_err(|e| e.to_string())?;
            families
                .iter()
                .map(|f| h.series(f, since, until, spans).map_err(|e| e.to_string()))
                .collect()
        })
        .await
        .map_err(|e| format!("reading the history: {e}"))?
    }
}

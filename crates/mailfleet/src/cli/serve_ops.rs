//! The dashboard's actions wired to their libraries: the policy's state, held mail released
//! or purged through the MTAs, blocks lifted in the directory; a backup of every store now;
//! the monitor's history.

use mailfleet_core::Config;
use mailfleet_core::child::is_mailfleet as alive;
use mailfleet_core::series::Series;
use mailfleet_serve::web::ops::{
    BlockRow, DamagedRow, DnsblRow, HeldRow, Ops, PolicyView, RepoView, SenderRow, SnapshotRow,
    UpgradeStepRow, UpgradeView,
};

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
        let data_dir = self.config.data_dir.clone();
        let at = |s: Option<i64>| s.and_then(|s| chrono::DateTime::from_timestamp(s, 0));
        tokio::task::spawn_blocking(move || {
            let journal =
                mailfleet_upgrade::journal::Journal::open(&data_dir).map_err(|e| e.to_string())?;
            let Some(id) = journal.latest().map_err(|e| e.to_string())? else {
                return Ok(None);
            };
            let r = journal.get(id).map_err(|e| e.to_string())?;
            Ok(Some(UpgradeView {
                id: r.id,
                created: at(Some(r.created)).unwrap_or_default(),
                running: r.state == "running" && r.owner.is_some_and(alive),
                state: r.state,
                reason: r.reason,
                packages: r.packages,
                abort_requested: r.abort_requested,
                steps: r
                    .steps
                    .into_iter()
                    .map(|s| UpgradeStepRow {
                        n: s.n,
                        server: s.server,
                        phase: s.phase.as_str().to_string(),
                        started: at(s.started),
                        ended: at(s.ended),
                        error: s.error,
                    })
                    .collect(),
            }))
        })
        .await
        .map_err(|e| format!("reading the upgrade journal: {e}"))?
    }

    async fn stop_upgrade(&self, id: i64) -> Result<String, String> {
        let data_dir = self.config.data_dir.clone();
        tokio::task::spawn_blocking(move || {
            let journal = mailfleet_upgrade::journal::Journal::open(&data_dir)
                .map_err(|e| e.to_string())?;
            let r = journal.get(id).map_err(|e| e.to_string())?;
            if r.state != "running" || !r.owner.is_some_and(alive) {
                return Err(format!(
                    "upgrade run {id} is {} and no process runs it: `mailfleet upgrade resume` or `mailfleet upgrade abort` it",
                    r.state
                ));
            }
            journal.request_abort(id).map_err(|e| e.to_string())?;
            Ok(format!("upgrade run {id} stops after its current step"))
        })
        .await
        .map_err(|e| format!("writing the upgrade journal: {e}"))?
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

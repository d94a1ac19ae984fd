//! The gates of an upgrade step: no backup of a store running, every directory replica
//! holding its master's changes, and the probe rounds of the soak after the update.

use std::time::Duration;

use mailfleet_core::Server;

use crate::run::Runner;

impl Runner<'_> {
    /// Waits (up to `[upgrade] backup_wait`) while a backup of `store` runs: a store is never
    /// updated under its backup.
    pub(crate) async fn no_backup_running(
        &self,
        store: &str,
        out: &dyn Fn(String) -> Result<(), String>,
    ) -> Result<(), String> {
        let wait = self.config.upgrade.backup_wait;
        let end = tokio::time::Instant::now() + wait;
        let mut told = false;
        loop {
            let running =
                self.hooks.backup_running(store).await.map_err(|e| {
                    format!("gate before {store}: whether a backup of it runs: {e}")
                })?;
            let Some(who) = running else {
                return Ok(());
            };
            if tokio::time::Instant::now() >= end {
                return Err(format!(
                    "gate before {store}: a backup of it still runs after {} ({who})",
                    crate::plan::mins(wait)
                ));
            }
            if !told {
                out(format!("waiting: a backup of {store} runs ({who})\n"))?;
                told = true;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// Waits (up to `[upgrade] replica_wait`) until every directory replica has every change
    /// its master had when the gate began: a replica that lags serves stale routing and
    /// passwords while its master, or it, is down. What it found.
    pub(crate) async fn replicas_in_sync(&self, before: &str) -> Result<String, String> {
        let wait = self.config.upgrade.replica_wait;
        let end = tokio::time::Instant::now() + wait;
        let fail = |e: String| format!("gate before {before}: directory replicas: {e}");
        let first = self.hooks.replica_csns().await.map_err(fail)?;
        if first.is_empty() {
            return Ok(String::new());
        }
        loop {
            let now = self.hooks.replica_csns().await.map_err(fail)?;
            // CSNs begin with a fixed-width GeneralizedTime: later sorts greater.
            let behind: Vec<String> = first
                .iter()
                .filter_map(|f| {
                    let target = f.master_csn.as_ref()?;
                    let has = now
                        .iter()
                        .find(|n| n.replica == f.replica)
                        .and_then(|n| n.replica_csn.clone());
                    (has.as_ref() < Some(target)).then(|| {
                        format!(
                            "{} has {}, {} had {target}",
                            f.replica,
                            has.as_deref().unwrap_or("nothing"),
                            f.master
                        )
                    })
                })
                .collect();
            if behind.is_empty() {
                let all: Vec<String> = now
                    .iter()
                    .map(|n| {
                        format!(
                            "{} at {} ({}'s)",
                            n.replica,
                            n.replica_csn.as_deref().unwrap_or("nothing"),
                            n.master
                        )
                    })
                    .collect();
                return Ok(format!("directory replicas in sync: {}\n", all.join(", ")));
            }
            if tokio::time::Instant::now() >= end {
                return Err(fail(format!(
                    "still behind after {}: {}",
                    crate::plan::mins(wait),
                    behind.join("; ")
                )));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Every probe round OK for the soak time (the first at once).
    /// Returns the time spent waiting between the rounds.
    pub(crate) async fn soak(&self, server: &Server, queued: bool) -> Result<Duration, String> {
        // Its users are locked while their mail is queued: that is the drain, not a problem.
        let skip = if queued {
            vec![format!("{} locked", server.name)]
        } else {
            Vec::new()
        };
        let soak = self.config.upgrade.soak;
        let end = tokio::time::Instant::now() + soak;
        let every = soak.clamp(Duration::from_secs(1), Duration::from_secs(10));
        let mut slept = Duration::ZERO;
        loop {
            self.hooks
                .fleet_ok(&skip)
                .await
                .map_err(|e| format!("gate after {}: {e}", server.name))?;
            if tokio::time::Instant::now() >= end {
                return Ok(slept);
            }
            let pause = every.min(end - tokio::time::Instant::now());
            tokio::time::sleep(pause).await;
            slept += pause;
        }
    }
}

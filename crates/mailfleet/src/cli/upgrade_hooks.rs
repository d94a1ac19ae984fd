//! What `upgrade run` gets from the other capabilities: probe rounds for its gates, mailbox
//! moves and account locks for drains, backups, and alarm mail. The wiring lives here because
//! no capability crate depends on another; each hook is one call into a library.

use mailfleet_core::config::Drain;
use mailfleet_core::{AccountBook, Config};
use mailfleet_move::Request;
use mailfleet_probe::State;

/// The hooks over a loaded config.
pub(crate) struct Wired<'a> {
    pub(crate) config: &'a Config,
    /// The daemon's ask to stop, when the daemon runs it.
    pub(crate) halt: Option<mailfleet_serve::runs::Halt>,
}

impl Wired<'_> {
    /// One probe round of `servers` (not this machine), every check but momentary
    /// business: a CPU, load or I/O peak is no reason to hold a security update, a full disk
    /// is. Each CRITICAL or UNKNOWN outcome as (`SERVER CHECK`, a line saying it).
    async fn failing(
        &self,
        servers: Vec<String>,
        skip: &[String],
    ) -> Result<Vec<(String, String)>, String> {
        let rounds = mailfleet_probe::plan::Rounds {
            servers,
            repeat: 1,
            n: 1,
            resources: true,
            checks: Vec::new(),
        };
        let (outcomes, _) = mailfleet_probe::plan::rounds(self.config, &rounds)
            .await
            .map_err(|e| e.to_string())?;
        Ok(outcomes
            .iter()
            .filter(|o| matches!(o.state, State::Critical | State::Unknown))
            .filter(|o| !(o.check == "cpu" || o.check == "load" || o.check.starts_with("io:")))
            .map(|o| (format!("{} {}", o.server, o.check), o))
            .filter(|(key, _)| !skip.contains(key))
            .map(|(key, o)| {
                let line = format!("{key} {:?}: {}", o.state, o.message);
                (key, line)
            })
            .collect())
    }

    /// A probe round of `servers` with nothing CRITICAL or UNKNOWN, a failure confirmed by a
    /// second round, as the monitor confirms its alarms: one slow login (a POP3 lock still
    /// held by the previous round) is no reason to halt an upgrade.
    async fn confirmed_ok(&self, servers: Vec<String>, skip: &[String]) -> Result<(), String> {
        let first = self.failing(servers.clone(), skip).await?;
        if first.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let again = self.failing(servers, skip).await?;
        let confirmed: Vec<String> = again
            .into_iter()
            .filter(|(key, _)| first.iter().any(|(k, _)| k == key))
            .map(|(_, line)| line)
            .collect();
        if confirmed.is_empty() {
            Ok(())
        } else {
            Err(confirmed.join("; "))
        }
    }

    fn probe_account(&self, store: &str) -> Option<String> {
        self.config
            .fleet
            .server(store)
            .and_then(|s| s.probe_account.as_ref())
            .map(ToString::to_string)
    }

    /// The accounts on `store` (only the locked ones, if `locked`) but its probe account.
    async fn users(
        &self,
        book: &AccountBook,
        store: &str,
        locked: bool,
    ) -> Result<Vec<String>, String> {
        let keep = self.probe_account(store);
        let all = book
            .list(&mailfleet_core::directory::Filter {
                domain: None,
                server: Some(store.to_string()),
                locked,
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(all
            .into_iter()
            .map(|a| a.address.to_string())
            .filter(|a| Some(a) != keep.as_ref())
            .collect())
    }

    /// Finishes the moves a killed run left open (`move resume`), before what is left of a
    /// drain or undrain is planned: planned first, an account switched in the directory but
    /// not yet unlocked looked already moved, and stayed locked.
    async fn finish_open(&self, what: &str) -> Result<(), String> {
        let resumed = mailfleet_move::command::resume(
            self.config,
            &mailfleet_move::command::Overrides::default(),
            &mailfleet_move::Quiet,
        )
        .await
        .map_err(|e| e.to_string())?;
        if resumed.failed() > 0 {
            return Err(format!(
                "moves left open before {what} did not finish: {}",
                resumed.errors().join("; ")
            ));
        }
        Ok(())
    }

    async fn moved(&self, request: Request, what: &str) -> Result<String, String> {
        let started = mailfleet_move::command::start(
            self.config,
            &request,
            what,
            false,
            &mailfleet_move::command::Overrides::default(),
            &mailfleet_move::Quiet,
        )
        .await
        .map_err(|e| e.to_string())?;
        if !started.plan.refused.is_empty() {
            let why: Vec<String> = started
                .plan
                .refused
                .iter()
                .map(|(a, w)| format!("{a}: {w}"))
                .collect();
            return Err(format!("{what} refused: {}", why.join("; ")));
        }
        let report = started.report.unwrap_or(mailfleet_move::BatchReport {
            moves: Vec::new(),
            stopped: None,
        });
        if report.failed() > 0 || report.stopped.is_some() {
            return Err(format!(
                "{what}: {} of {} moves failed{}: {}",
                report.failed(),
                report.moves.len(),
                report
                    .stopped
                    .as_ref()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default(),
                report.errors().join("; ")
            ));
        }
        Ok(format!("{what}: {} accounts moved", report.moves.len()))
    }
}

#[async_trait::async_trait(?Send)]
impl mailfleet_upgrade::hooks::Hooks for Wired<'_> {
    async fn fleet_ok(&self, skip: &[String]) -> Result<(), String> {
        let all = self
            .config
            .fleet
            .servers
            .iter()
            .map(|s| s.name.clone())
            .collect();
        self.confirmed_ok(all, skip).await
    }

    async fn servers_ok(&self, servers: &[String]) -> Result<(), String> {
        self.confirmed_ok(servers.to_vec(), &[]).await
    }

    async fn replica_csns(&self) -> Result<Vec<mailfleet_upgrade::hooks::ReplicaCsn>, String> {
        mailfleet_probe::replica::csns(self.config).await
    }

    async fn drain(&self, store: &str, how: Drain) -> Result<String, String> {
        match how {
            Drain::Move => {
                let what = format!("move drain {store}");
                self.finish_open(&what).await?;
                let request = Request {
                    from: vec![store.to_string()],
                    keep: self.probe_account(store).into_iter().collect(),
                    ..Request::default()
                };
                self.moved(request, &what).await
            }
            Drain::Queue => {
                let book = AccountBook::open(self.config)
                    .await
                    .map_err(|e| e.to_string())?;
                let users = self.users(&book, store, false).await?;
                book.set_locked_all(&users, true)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(format!(
                    "{} accounts locked: their mail waits in the MTAs' queues",
                    users.len()
                ))
            }
        }
    }

    async fn undrain(&self, store: &str, how: Drain) -> Result<String, String> {
        match how {
            Drain::Move => {
                let what = format!("move back {store}");
                self.finish_open(&what).await?;
                let request = mailfleet_move::command::back_request(self.config, store)
                    .await
                    .map_err(|e| e.to_string())?;
                if request.accounts.is_empty() {
                    return Ok("nothing to move back".into());
                }
                self.moved(request, &what).await
            }
            Drain::Queue => {
                let book = AccountBook::open(self.config)
                    .await
                    .map_err(|e| e.to_string())?;
                let locked = self.users(&book, store, true).await?;
                book.set_locked_all(&locked, false)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(format!(
                    "{} accounts unlocked, the MTAs' queues flushed",
                    locked.len()
                ))
            }
        }
    }

    async fn backup(&self, store: &str) -> Result<String, String> {
        super::backup_now::backup_now(self.config, vec![store.to_string()]).await
    }

    async fn backup_running(&self, store: &str) -> Result<Option<String>, String> {
        let config = self.config.clone();
        let store = store.to_string();
        let look = tokio::task::spawn_blocking(move || {
            let repo = mailfleet_backup::command::open::open(&config)?;
            mailfleet_backup::lock::backups_of(&repo, &store)
        });
        // A repository that does not answer (a hung mount) must not hang the run either.
        let found = tokio::time::timeout(std::time::Duration::from_secs(60), look)
            .await
            .map_err(|_| "the backup repository did not answer within 60 s".to_string())?
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        Ok(found.first().map(|l| {
            format!(
                "process {} on {} (lock refreshed {})",
                l.pid,
                l.host,
                l.time.format("%Y-%m-%d %H:%M:%S UTC")
            )
        }))
    }

    async fn alarm(&self, subject: &str, body: &str) {
        tracing::warn!("{subject}");
        let notifier = mailfleet_notify::Notifier::new(self.config);
        for to in &self.config.monitor.notify_email {
            if let Err(e) = notifier.mail(&to.to_string(), subject, body).await {
                tracing::warn!("upgrade notice to {to} not sent: {e}");
            }
        }
    }

    fn paused(&self) -> Option<String> {
        use mailfleet_serve::runs::Stop;
        match self.halt.as_ref()?.get()? {
            Stop::Daemon => Some(
                "the daemon stopped before this step: `mailfleet upgrade resume` continues".into(),
            ),
            Stop::Operator(why) => Some(format!("{why}: `mailfleet upgrade resume` continues")),
        }
    }
}

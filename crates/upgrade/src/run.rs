//! `upgrade run`: the plan executed server by server through each server's access, every
//! step recorded before it is taken (see [`crate::journal`]). Per server: wait for its start
//! (its role's spacing, a canary's watch, a maintenance window); gates before (one probe
//! round of the fleet with nothing CRITICAL or UNKNOWN, every directory replica holding its
//! master's changes); drain a store (its mailboxes moved away, or its mail queued at the
//! MTAs; its probe account stays so the gates can watch it), or stop another server's
//! services the update concerns while its partners serve (see [`crate::stop`]);
//! a backup right before when the last good one is too old; the update (the package manager
//! through its access, output kept, or the server's own update command); the daemons still
//! running replaced files restarted, and a reboot when the update asks for one; gates
//! after (every probe round OK for the soak time); a backup right after; undrain. A server is
//! marked for upgrade (no move places a mailbox on it) from its gate until it is done. A failed gate or update halts the run with an alarm and
//! leaves every later server untouched; `upgrade resume` continues from the recorded phase.

use std::time::Instant;

use chrono::{DateTime, Utc};
use mailfleet_core::config::Drain;
use mailfleet_core::upgrade_marks::UpgradeMarks;
use mailfleet_core::{Config, Role, Server};
use mailfleet_remote::Reach;

use crate::hooks::Hooks;
use crate::journal::{Journal, JournalError, RunRecord, StepPhase};
use crate::order::Rank;

/// Why a run stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The upgrade marks failed.
    #[error(transparent)]
    Marks(#[from] mailfleet_core::upgrade_marks::MarksError),
    /// The plan could not be made.
    #[error(transparent)]
    Plan(#[from] crate::PlanError),
    /// A gate, a drain or an update failed: the run halted there.
    #[error("upgrade run {id} halted at {server}: {why}")]
    Halted {
        /// The run.
        id: i64,
        /// Where.
        server: String,
        /// Why.
        why: String,
    },
}

/// Runs upgrade runs.
pub struct Runner<'a> {
    /// The config.
    pub config: &'a Config,
    /// How servers are reached.
    pub reach: &'a Reach,
    /// Where every step is recorded.
    pub journal: &'a Journal,
    /// The other capabilities.
    pub hooks: &'a dyn Hooks,
}

fn unix(t: Option<i64>) -> Option<DateTime<Utc>> {
    t.and_then(|s| DateTime::from_timestamp(s, 0))
}

impl Runner<'_> {
    fn server(&self, name: &str) -> Option<&Server> {
        self.config.fleet.server(name)
    }

    /// Starts a new run of `servers` (empty: all) updating `packages` (empty: all), and
    /// drives it to its end or to where it halts.
    pub async fn start(
        &self,
        servers: Vec<String>,
        packages: Vec<String>,
    ) -> Result<RunRecord, RunError> {
        let plan = crate::command::plan(self.config, servers, packages.clone(), Utc::now()).await?;
        let order: Vec<String> = plan.steps.iter().map(|s| s.server.clone()).collect();
        let id = self.journal.begin(&packages, &order)?;
        self.drive(id).await
    }

    /// Continues run `id` from its recorded phases.
    pub async fn drive(&self, id: i64) -> Result<RunRecord, RunError> {
        let run = self.journal.claim(id)?;
        for step in &run.steps {
            if step.phase == StepPhase::Done {
                continue;
            }
            if self.journal.get(id)?.abort_requested {
                return self.abort_now(id).await;
            }
            if let Some(why) = self.hooks.paused() {
                // No alarm: nothing failed, the run waits for `upgrade resume`.
                self.journal.halt(id, step.n, &why)?;
                return Err(RunError::Halted {
                    id,
                    server: step.server.clone(),
                    why,
                });
            }
            self.journal.clear_error(id, step.n)?;
            if let Err(why) = self.step(id, step.n, &step.server, step.phase).await {
                self.journal.halt(id, step.n, &why)?;
                self.hooks
                    .alarm(
                        &format!("[mailfleet] upgrade run {id} HALTED at {}", step.server),
                        &format!(
                            "The upgrade run {id} halted at {} (step {}):\n\n{why}\n\nThe servers after it are untouched. Fix the cause, then `mailfleet upgrade resume`; or `mailfleet upgrade abort`.\n",
                            step.server, step.n
                        ),
                    )
                    .await;
                return Err(RunError::Halted {
                    id,
                    server: step.server.clone(),
                    why,
                });
            }
        }
        self.journal.finish(id, "done", None)?;
        let run = self.journal.get(id)?;
        self.hooks
            .alarm(
                &format!(
                    "[mailfleet] upgrade run {id} done: {} servers",
                    run.steps.len()
                ),
                &format!(
                    "Every server is upgraded, in this order:\n\n{}",
                    crate::summary::summary(&run)
                ),
            )
            .await;
        Ok(run)
    }

    /// Stops run `id` now, between steps: the marks of the servers not upgraded are cleared.
    async fn abort_now(&self, id: i64) -> Result<RunRecord, RunError> {
        let run = self.journal.get(id)?;
        let marks = UpgradeMarks::open(&self.config.data_dir)?;
        for s in run.steps.iter().filter(|s| s.phase != StepPhase::Done) {
            marks.clear(&s.server)?;
        }
        self.journal
            .finish(id, "aborted", Some("aborted by the admin"))?;
        Ok(self.journal.get(id)?)
    }

    /// Asks run `id` to stop: at once if no process runs it, else after its current step.
    pub async fn abort(&self, id: i64) -> Result<RunRecord, RunError> {
        self.journal.request_abort(id)?;
        match self.journal.claim(id) {
            Ok(_) => self.abort_now(id).await,
            Err(JournalError::Owned { .. }) => Ok(self.journal.get(id)?),
            Err(e) => Err(e.into()),
        }
    }

    /// When step `n` may start: its role's spacing after the last server of the role, a
    /// canary's watch, then the next maintenance window.
    fn start_at(&self, run: &RunRecord, n: usize, server: &Server) -> (DateTime<Utc>, Vec<String>) {
        let u = &self.config.upgrade;
        let role: Role = Rank::of(server).role();
        let mut at = Utc::now();
        let mut why = Vec::new();
        for prev in run
            .steps
            .iter()
            .filter(|s| s.n < n && s.phase == StepPhase::Done)
        {
            let Some(p) = self.server(&prev.server) else {
                continue;
            };
            if Rank::of(p).role() != role {
                continue;
            }
            let Some(end) = unix(prev.ended) else {
                continue;
            };
            let mut wait = u.spacing.get(&role).copied().unwrap_or_default();
            if p.canary && !server.canary {
                wait = wait.max(u.canary_soak);
            }
            let until = end + chrono::Duration::from_std(wait).unwrap_or_default();
            if until > at {
                at = until;
                why.push(format!(
                    "{} after {} ({role})",
                    crate::plan::mins(wait),
                    prev.server
                ));
            }
        }
        let open = crate::window::next_open(&u.windows, u.timezone, at);
        if open > at {
            why.push("the next maintenance window".into());
            at = open;
        }
        (at, why)
    }

    /// One server's step from `phase` to its end; `Err` says why the run must halt. The time
    /// of each part goes to the journal (`timings`), waits apart from work.
    async fn step(
        &self,
        id: i64,
        n: usize,
        name: &str,
        mut phase: StepPhase,
    ) -> Result<(), String> {
        let server = self
            .server(name)
            .ok_or_else(|| format!("{name} is no longer in the config"))?;
        let store = Rank::of(server) == Rank::Store;
        let how = server.drain.unwrap_or(self.config.upgrade.drain);
        let j = |e: JournalError| e.to_string();
        let out = |text: String| self.journal.append_output(id, n, &text).map_err(j);
        let time = |part: &str, since: Instant| {
            self.journal
                .add_time(id, n, part, since.elapsed().as_secs_f64())
                .map_err(j)
        };
        loop {
            match phase {
                StepPhase::Pending => {
                    let t = Instant::now();
                    let run = self.journal.get(id).map_err(j)?;
                    let (at, why) = self.start_at(&run, n, server);
                    if let Ok(wait) = (at - Utc::now()).to_std() {
                        out(format!(
                            "waiting {:.0} s: {}\n",
                            wait.as_secs_f64(),
                            why.join("; ")
                        ))?;
                        tokio::time::sleep(wait).await;
                    }
                    time("wait", t)?;
                    // The backup first: the fleet's probes may change during a long wait.
                    if store {
                        let t = Instant::now();
                        self.no_backup_running(name, &out).await?;
                        time("backup_wait", t)?;
                    }
                    let t = Instant::now();
                    self.hooks
                        .fleet_ok(&[])
                        .await
                        .map_err(|e| format!("gate before {name}: {e}"))?;
                    let replicas = self.replicas_in_sync(name).await?;
                    // From now until it is done no move places a mailbox on it. The servers
                    // later in the run are not marked yet: a drain may use them, since its
                    // mailboxes come back before their turn.
                    UpgradeMarks::open(&self.config.data_dir)
                        .and_then(|m| m.mark(name, &format!("upgrade run {id}")))
                        .map_err(|e| e.to_string())?;
                    out(format!(
                        "gate before: every probe OK at {}\n{replicas}",
                        Utc::now().to_rfc3339()
                    ))?;
                    time("gate_before", t)?;
                    self.journal.set_phase(id, n, StepPhase::Gated).map_err(j)?;
                }
                StepPhase::Gated => {
                    let t = Instant::now();
                    if store {
                        let did = self
                            .hooks
                            .drain(name, how)
                            .await
                            .map_err(|e| format!("drain of {name}: {e}"))?;
                        out(format!("drained: {did}\n"))?;
                    } else {
                        let packages = self.journal.get(id).map_err(j)?.packages;
                        if let Some(did) = self.stop_for_update(server, &packages).await? {
                            out(did)?;
                        }
                    }
                    time("drain", t)?;
                    self.journal
                        .set_phase(id, n, StepPhase::Drained)
                        .map_err(j)?;
                }
                StepPhase::Drained => {
                    if store && self.backup_due(server).await {
                        let t = Instant::now();
                        let did = self
                            .hooks
                            .backup(name)
                            .await
                            .map_err(|e| format!("backup of {name} before its update: {e}"))?;
                        out(format!("backup before: {did}\n"))?;
                        time("backup_before", t)?;
                    }
                    let t = Instant::now();
                    let packages = self.journal.get(id).map_err(j)?.packages;
                    let text = crate::update::update(self.reach, server, &packages).await?;
                    out(text)?;
                    time("update", t)?;
                    let u = &self.config.upgrade;
                    let t = Instant::now();
                    let did = crate::restart::restart_stale(self.reach, server, u.restart_timeout)
                        .await?;
                    out(did)?;
                    time("restart", t)?;
                    let t = Instant::now();
                    let did = crate::reboot::reboot_if_needed(self.reach, server, u.reboot_timeout)
                        .await?;
                    out(did)?;
                    time("reboot", t)?;
                    self.journal
                        .set_phase(id, n, StepPhase::Updated)
                        .map_err(j)?;
                }
                StepPhase::Updated => {
                    let t = Instant::now();
                    let slept = self.soak(server, store && how == Drain::Queue).await?;
                    out(format!(
                        "gate after: every probe OK for {}\n",
                        crate::plan::mins(self.config.upgrade.soak)
                    ))?;
                    self.journal
                        .add_time(id, n, "soak_wait", slept.as_secs_f64())
                        .map_err(j)?;
                    self.journal
                        .add_time(
                            id,
                            n,
                            "gate_after",
                            t.elapsed().saturating_sub(slept).as_secs_f64(),
                        )
                        .map_err(j)?;
                    self.journal
                        .set_phase(id, n, StepPhase::Soaked)
                        .map_err(j)?;
                }
                StepPhase::Soaked => {
                    if store {
                        let t = Instant::now();
                        let did = self
                            .hooks
                            .backup(name)
                            .await
                            .map_err(|e| format!("backup of {name} after its update: {e}"))?;
                        out(format!("backup after: {did}\n"))?;
                        time("backup_after", t)?;
                        let t = Instant::now();
                        let did = self
                            .hooks
                            .undrain(name, how)
                            .await
                            .map_err(|e| format!("undrain of {name}: {e}"))?;
                        out(format!("undrained: {did}\n"))?;
                        time("undrain", t)?;
                    }
                    UpgradeMarks::open(&self.config.data_dir)
                        .and_then(|m| m.clear(name))
                        .map_err(|e| e.to_string())?;
                    self.journal.set_phase(id, n, StepPhase::Done).map_err(j)?;
                    return Ok(());
                }
                StepPhase::Done => return Ok(()),
                StepPhase::Failed => return Err(format!("{name}'s step is recorded as failed")),
            }
            phase = self
                .journal
                .get(id)
                .map_err(j)?
                .steps
                .iter()
                .find(|s| s.n == n)
                .map_or(StepPhase::Failed, |s| s.phase);
        }
    }

    /// Whether `store`'s last good backup is older than `backup_max_age` (or unknown).
    async fn backup_due(&self, store: &Server) -> bool {
        let Some(path) = &store.backup_status else {
            return true;
        };
        let limit = chrono::Duration::from_std(self.config.upgrade.backup_max_age)
            .unwrap_or(chrono::Duration::MAX);
        match crate::command::last_good(path).await {
            Ok(Some(t)) => Utc::now() - t > limit,
            _ => true,
        }
    }
}

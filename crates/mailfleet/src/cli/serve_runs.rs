//! The daemon's runs wired to their libraries: each job executed on its own thread with a
//! runtime of its own (an upgrade's hooks are not `Send`), through the same library calls
//! as `upgrade run|resume` and `move ...|back|resume`, looking at the daemon's halt between
//! steps; and the command line's side: a job handed to the daemon when one serves, followed
//! to its end.

use std::sync::Arc;
use std::time::Duration;

use mailfleet_core::Config;
use mailfleet_move::command::{self, Overrides};
use mailfleet_move::{Entry, Halt as MoveHalt, Progress, Request};
use mailfleet_serve::runs::{Ended, Execute, Halt, Job, Kind, Stop, Tuning};

use super::serve_ops_runs::on_own_runtime;

use super::exit;

fn overrides(t: &Tuning) -> Overrides {
    Overrides {
        lock_budget: t
            .lock_budget_secs
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64),
        parallel: t.parallel.map(usize::from),
    }
}

/// A move batch's way to the daemon's halt.
struct Halting(Halt);

impl Progress for Halting {
    fn started(&self, entry: &Entry) {
        tracing::info!("runs: moving {}", entry.address);
    }
    fn ended(&self, ended: &mailfleet_move::Ended) {
        match &ended.error {
            None => tracing::info!("runs: {} moved", ended.address),
            Some(e) => tracing::warn!("runs: {} not moved: {e}", ended.address),
        }
    }
    fn halt(&self) -> Option<MoveHalt> {
        match self.0.get()? {
            Stop::Daemon => Some(MoveHalt::Paused("the daemon stopped".into())),
            Stop::Operator(why) => Some(MoveHalt::Aborted(why)),
        }
    }
}

fn of_move(e: mailfleet_move::MoveError) -> u8 {
    exit::of_error(&e.into())
}

fn failed(code: u8, summary: String) -> Ended {
    Ended {
        code,
        summary,
        upgrade_run: None,
        output: serde_json::Value::Null,
    }
}

fn json(v: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

async fn upgrade(config: &Config, job: Job, halt: Halt) -> Ended {
    use mailfleet_upgrade::journal::Journal;
    use mailfleet_upgrade::run::{RunError, Runner};
    let journal = match Journal::open(&config.data_dir) {
        Ok(j) => j,
        Err(e) => return failed(exit::FAILED, e.to_string()),
    };
    let reach = mailfleet_remote::Reach::new();
    let hooks = super::upgrade_hooks::Wired {
        config,
        halt: Some(halt),
    };
    let runner = Runner {
        config,
        reach: &reach,
        journal: &journal,
        hooks: &hooks,
    };
    let r = match job {
        Job::UpgradeRun { servers, packages } => runner.start(servers, packages).await,
        _ => match journal.open_run() {
            Ok(Some(id)) => runner.drive(id).await,
            Ok(None) => return failed(exit::USAGE, "no upgrade run is open".into()),
            Err(e) => return failed(exit::FAILED, e.to_string()),
        },
    };
    let (id, halted) = match r {
        Ok(record) => (record.id, None),
        Err(RunError::Halted { id, server, why }) => {
            (id, Some(format!("halted at {server}: {why}")))
        }
        Err(e @ RunError::Plan(mailfleet_upgrade::PlanError::UnknownServer(_))) => {
            return failed(exit::USAGE, e.to_string());
        }
        Err(e) => return failed(exit::FAILED, e.to_string()),
    };
    match journal.get(id) {
        Ok(record) => Ended {
            code: u8::from(halted.is_some() || record.state == "halted"),
            summary: match halted {
                Some(h) => format!("upgrade run {id} {h}"),
                None => format!("upgrade run {id}: {}", record.state),
            },
            upgrade_run: Some(id),
            output: json(&record),
        },
        Err(e) => failed(exit::FAILED, e.to_string()),
    }
}

fn moved(report: &mailfleet_move::BatchReport) -> (u8, String) {
    let failed = report.failed();
    let mut summary = format!(
        "{} moved, {failed} not",
        report.moves.len().saturating_sub(failed)
    );
    if let Some(why) = &report.stopped {
        summary.push_str(&format!(" (stopped: {why})"));
    }
    let code = if failed > 0 || report.stopped.is_some() {
        exit::FAILED
    } else {
        exit::OK
    };
    (code, summary)
}

async fn moves(config: &Config, job: Job, halt: Halt) -> Ended {
    let progress = Halting(halt);
    let (request, what, tuning) = match job {
        Job::Move {
            accounts,
            domains,
            from,
            to,
            what,
            tuning,
        } => (
            Request {
                accounts,
                domains,
                from,
                to,
                keep: Vec::new(),
            },
            what,
            tuning,
        ),
        Job::MoveBack { store, tuning } => match command::back_request(config, &store).await {
            Ok(r) => (r, format!("move back {store}"), tuning),
            Err(e) => {
                return {
                    let why = e.to_string();
                    failed(of_move(e), why)
                };
            }
        },
        Job::MoveResume { tuning } => {
            return match command::resume(config, &overrides(&tuning), &progress).await {
                Ok(report) => {
                    let (code, summary) = moved(&report);
                    Ended {
                        code,
                        summary,
                        upgrade_run: None,
                        output: json(&report),
                    }
                }
                Err(e) => {
                    let why = e.to_string();
                    failed(of_move(e), why)
                }
            };
        }
        _ => return failed(exit::USAGE, "not a move".into()),
    };
    let started = match command::start(
        config,
        &request,
        &what,
        false,
        &overrides(&tuning),
        &progress,
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            return {
                let why = e.to_string();
                failed(of_move(e), why)
            };
        }
    };
    let (code, summary) = match (&started.report, started.plan.refused.is_empty()) {
        (_, false) => (
            exit::FAILED,
            format!(
                "the plan is refused, nothing was moved: {}",
                started
                    .plan
                    .refused
                    .iter()
                    .map(|(address, why)| format!("{address}: {why}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
        (Some(report), true) => moved(report),
        (None, true) => (exit::OK, "nothing to move".into()),
    };
    Ended {
        code,
        summary,
        upgrade_run: None,
        output: json(&started),
    }
}

/// What the daemon's runs execute.
pub(crate) fn execute() -> Execute {
    Arc::new(|config: Config, job: Job, halt: Halt| {
        let ended = match job.kind() {
            Kind::Upgrade => on_own_runtime(upgrade(&config, job, halt)),
            Kind::Move => on_own_runtime(moves(&config, job, halt)),
        };
        ended.unwrap_or_else(|e| failed(exit::FAILED, format!("the run: {e}")))
    })
}

/// Hands `job` to the daemon serving the config's data directory and waits for its end;
/// `None` when no daemon runs jobs (the caller runs it itself).
pub(crate) async fn handed(config: &Config, job: &Job) -> anyhow::Result<Option<Ended>> {
    let audit = super::audit_log::record();
    let Some(h) = mailfleet_serve::runs_socket::hand_over(&config.data_dir, job, audit)
        .await
        .map_err(anyhow::Error::msg)?
    else {
        return Ok(None);
    };
    eprintln!(
        "mailfleet: `{}` runs in the daemon (PID {}); interrupting this command leaves it running",
        job.describe(),
        h.pid
    );
    Ok(Some(h.ended().await.map_err(anyhow::Error::msg)?))
}

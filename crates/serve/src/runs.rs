//! Moves and upgrades run by the daemon (`[serve] parts` has `runs`): started from the
//! dashboard or handed over by the command line (see [`crate::runs_socket`]), each on a
//! thread of its own (an upgrade's hooks are not `Send`), one of each kind at a time, and
//! journaled by its library exactly as when the command line runs it. A run outlives a
//! reload (SIGHUP). When the daemon stops, each run is asked to stop before its next step (a
//! move batch starts no further move, an upgrade halts before its next server) and given
//! [`GRACE`] to get there; whatever is left is in its journal for `resume`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mailfleet_core::Config;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// How long a stopping daemon waits for its runs to reach the end of their current step.
pub const GRACE: Duration = Duration::from_secs(120);

/// How many ended runs the dashboard keeps showing.
const KEPT: usize = 20;

/// Settings of a move batch the command line may change (`--lock-budget`, `--parallel`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tuning {
    /// `--lock-budget`, in seconds.
    pub lock_budget_secs: Option<f64>,
    /// `--parallel`.
    pub parallel: Option<u16>,
}

/// What a run does: the command line's `upgrade run|resume` and `move ...|drain|back|resume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum Job {
    /// A new upgrade run of `servers` (empty: all) updating `packages` (empty: all offered).
    UpgradeRun {
        /// The servers.
        servers: Vec<String>,
        /// The packages.
        packages: Vec<String>,
    },
    /// The open upgrade run, continued from its recorded phases.
    UpgradeResume,
    /// A batch of moves (`move drain STORE` is one `from` STORE).
    Move {
        /// Accounts by address.
        accounts: Vec<String>,
        /// Every account of these domains.
        domains: Vec<String>,
        /// Every account on these stores.
        from: Vec<String>,
        /// Where they go (default: placed by weight and free space).
        to: Option<String>,
        /// How the batch is said in the journal and the audit log (`move drain store1`).
        what: String,
        /// Its settings.
        tuning: Tuning,
    },
    /// Every account a drain of `store` took, back to it.
    MoveBack {
        /// The store.
        store: String,
        /// Its settings.
        tuning: Tuning,
    },
    /// Every move a stopped batch left open, continued.
    MoveResume {
        /// Its settings.
        tuning: Tuning,
    },
}

/// The two kinds of run: one of each at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An upgrade run.
    Upgrade,
    /// A batch of moves.
    Move,
}

impl Kind {
    /// How people say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Upgrade => "upgrade",
            Kind::Move => "move",
        }
    }
}

impl Job {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Job::UpgradeRun { .. } | Job::UpgradeResume => Kind::Upgrade,
            _ => Kind::Move,
        }
    }

    /// The command it is, as the audit log and the dashboard say it.
    pub fn describe(&self) -> String {
        let list = |flag: &str, v: &[String]| {
            if v.is_empty() {
                String::new()
            } else {
                format!(" --{flag} {}", v.join(","))
            }
        };
        match self {
            Job::UpgradeRun { servers, packages } => format!(
                "upgrade run{}{}",
                list("servers", servers),
                list("packages", packages)
            ),
            Job::UpgradeResume => "upgrade resume".into(),
            Job::Move { what, .. } => what.clone(),
            Job::MoveBack { store, .. } => format!("move back {store}"),
            Job::MoveResume { .. } => "move resume".into(),
        }
    }
}

/// Why a run is asked to stop before its next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// An operator stopped it (a move batch: the moves not started are aborted).
    Operator(String),
    /// The daemon stops: what is not started stays open for `resume`.
    Daemon,
}

/// What a run looks at between its steps.
#[derive(Debug, Clone)]
pub struct Halt(watch::Receiver<Option<Stop>>);

impl Halt {
    /// Whether it is asked to stop, and why.
    pub fn get(&self) -> Option<Stop> {
        self.0.borrow().clone()
    }
}

/// How a run ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ended {
    /// The exit code the command line gives for it.
    pub code: u8,
    /// One line for people.
    pub summary: String,
    /// The upgrade run it was, when there was one.
    pub upgrade_run: Option<i64>,
    /// What `--json` prints for it.
    pub output: serde_json::Value,
}

/// Executes a job to its end on the calling thread (its own), looking at the halt between
/// steps: given by the daemon's caller, which wires the move and upgrade libraries.
pub type Execute = Arc<dyn Fn(Config, Job, Halt) -> Ended + Send + Sync>;

/// A run, as the dashboard lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    /// Its number in this daemon.
    pub n: u64,
    /// Its kind.
    pub kind: Kind,
    /// The command it is.
    pub what: String,
    /// Who started it.
    pub who: String,
    /// When.
    pub since: DateTime<Utc>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// How it ended.
    pub ended: Option<Ended>,
    /// Whether it was asked to stop.
    pub stopping: bool,
}

struct Running {
    row: RunRow,
    stop: watch::Sender<Option<Stop>>,
    done: watch::Receiver<Option<Ended>>,
}

#[derive(Default)]
struct State {
    next: u64,
    running: Vec<Running>,
    past: VecDeque<RunRow>,
}

/// A run just started: its number, and its end once it comes.
pub struct Started {
    /// Its number in this daemon.
    pub n: u64,
    /// `Some` once it ended.
    pub done: watch::Receiver<Option<Ended>>,
}

/// The daemon's runs, living across reloads.
pub struct Runs {
    execute: Execute,
    state: Mutex<State>,
}

impl Runs {
    /// No run yet; each will be executed by `execute`.
    pub fn new(execute: Execute) -> Runs {
        Runs {
            execute,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere leaves the lists as they were: still good to read and change.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts `job` for `who` with `config` on a thread of its own; `on_end` is called with
    /// its end. Refused while a run of its kind runs.
    pub fn start(
        self: &Arc<Self>,
        config: Config,
        job: Job,
        who: &str,
        on_end: impl FnOnce(&Ended) + Send + 'static,
    ) -> Result<Started, String> {
        let kind = job.kind();
        let mut state = self.state();
        if let Some(r) = state.running.iter().find(|r| r.row.kind == kind) {
            return Err(format!(
                "`{}`, started by {} at {}, still runs: one {} run at a time",
                r.row.what,
                r.row.who,
                r.row.since.format("%H:%M:%S UTC"),
                kind.as_str()
            ));
        }
        state.next += 1;
        let n = state.next;
        let (stop, halt) = watch::channel(None);
        let (done_tx, done) = watch::channel(None);
        let row = RunRow {
            n,
            kind,
            what: job.describe(),
            who: who.to_string(),
            since: Utc::now(),
            ended_at: None,
            ended: None,
            stopping: false,
        };
        tracing::info!("runs: {n} `{}` started by {who}", row.what);
        let runs = self.clone();
        std::thread::Builder::new()
            .name(format!("run-{}", kind.as_str()))
            .spawn(move || {
                let execute = runs.execute.clone();
                let ended = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    execute(config, job, Halt(halt))
                }))
                .unwrap_or_else(|_| Ended {
                    code: 70,
                    summary: "the run panicked: its journal says where it stopped".into(),
                    upgrade_run: None,
                    output: serde_json::Value::Null,
                });
                tracing::info!("runs: {n} ended: {}", ended.summary);
                runs.ended(n, &ended);
                // Before the waiting client hears of it: the client's own record comes after.
                on_end(&ended);
                done_tx.send_replace(Some(ended));
            })
            .map_err(|e| format!("no thread for the run: {e}"))?;
        state.running.push(Running {
            row,
            stop,
            done: done.clone(),
        });
        Ok(Started { n, done })
    }

    fn ended(&self, n: u64, ended: &Ended) {
        let mut state = self.state();
        if let Some(i) = state.running.iter().position(|r| r.row.n == n) {
            let mut row = state.running.remove(i).row;
            row.ended_at = Some(Utc::now());
            row.ended = Some(ended.clone());
            state.past.push_front(row);
            state.past.truncate(KEPT);
        }
    }

    /// The runs running, then those ended, newest first.
    pub fn rows(&self) -> Vec<RunRow> {
        let state = self.state();
        state
            .running
            .iter()
            .rev()
            .map(|r| r.row.clone())
            .chain(state.past.iter().cloned())
            .collect()
    }

    /// Whether a run of `kind` runs now.
    pub fn running(&self, kind: Kind) -> bool {
        self.state().running.iter().any(|r| r.row.kind == kind)
    }

    /// Asks the run of `kind` to stop before its next step, for `who`; what it did.
    pub fn stop(&self, kind: Kind, who: &str) -> Result<String, String> {
        let mut state = self.state();
        let Some(r) = state.running.iter_mut().find(|r| r.row.kind == kind) else {
            return Err(format!("no {} run runs in the daemon", kind.as_str()));
        };
        r.stop
            .send_replace(Some(Stop::Operator(format!("stopped by {who}"))));
        r.row.stopping = true;
        Ok(format!("`{}` stops before its next step", r.row.what))
    }

    /// Asks every run to stop before its next step and waits for them, `grace` at most:
    /// the daemon stops. Returns how many were still running after it.
    pub async fn wind_down(&self, grace: Duration) -> usize {
        let mut waiting: Vec<(String, watch::Receiver<Option<Ended>>)> = {
            let mut state = self.state();
            state
                .running
                .iter_mut()
                .map(|r| {
                    r.stop.send_replace(Some(Stop::Daemon));
                    r.row.stopping = true;
                    (r.row.what.clone(), r.done.clone())
                })
                .collect()
        };
        if waiting.is_empty() {
            return 0;
        }
        tracing::info!(
            "runs: waiting up to {} s for {} run(s) to end their current step",
            grace.as_secs(),
            waiting.len()
        );
        let all = futures::future::join_all(
            waiting
                .iter_mut()
                .map(|(_, rx)| rx.wait_for(|e| e.is_some())),
        );
        if tokio::time::timeout(grace, all).await.is_ok() {
            return 0;
        }
        let left: Vec<String> = waiting
            .iter()
            .filter(|(_, rx)| rx.borrow().is_none())
            .map(|(w, _)| format!("`{w}`"))
            .collect();
        tracing::warn!(
            "runs: {} still running after {} s, left to its journal (resume it): {}",
            left.len(),
            grace.as_secs(),
            left.join(", ")
        );
        left.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(code: u8) -> Ended {
        Ended {
            code,
            summary: format!("code {code}"),
            upgrade_run: None,
            output: serde_json::Value::Null,
        }
    }

    fn config() -> Config {
        Config::parse("", std::path::Path::new("mailfleet.toml")).expect("an empty config loads")
    }

    #[tokio::test]
    async fn one_run_of_a_kind_and_a_stop_reaches_it() {
        let runs = Arc::new(Runs::new(Arc::new(|_, job, halt: Halt| {
            if job == Job::UpgradeResume {
                return ended(0);
            }
            while halt.get().is_none() {
                std::thread::sleep(Duration::from_millis(5));
            }
            ended(match halt.get() {
                Some(Stop::Operator(_)) => 1,
                _ => 2,
            })
        })));
        let job = Job::MoveResume {
            tuning: Tuning::default(),
        };
        let mut first = runs.start(config(), job.clone(), "ann", |_| {}).unwrap();
        let refused = runs
            .start(config(), job.clone(), "bob", |_| {})
            .err()
            .unwrap();
        assert!(refused.contains("started by ann"), "{refused}");
        // Another kind runs beside it.
        let mut other = runs
            .start(config(), Job::UpgradeResume, "bob", |_| {})
            .unwrap();
        other.done.wait_for(|e| e.is_some()).await.unwrap();
        assert!(runs.running(Kind::Move));
        runs.stop(Kind::Move, "carl").unwrap();
        let code = first.done.wait_for(|e| e.is_some()).await.unwrap().clone();
        assert_eq!(code.unwrap().code, 1);
        let rows = runs.rows();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.ended.is_some()));
        assert!(runs.stop(Kind::Move, "carl").is_err());
        // The daemon's stop reaches a run as such.
        let _third = runs.start(config(), job, "ann", |_| {}).unwrap();
        assert_eq!(runs.wind_down(Duration::from_secs(30)).await, 0);
        assert_eq!(runs.rows()[0].ended.as_ref().unwrap().code, 2);
    }
}

//! A check's result: state, message and the time of each step; and the run that times them
//! against one deadline, so a server that accepts the connection and then says nothing is
//! CRITICAL when the deadline passes, naming the step it hung in.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use tokio::time::{Instant, timeout_at};

/// Monitoring-plugin states; the exit code of `mailfleet probe` is the worst one's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    /// Works, in time.
    Ok,
    /// Works, slowly.
    Warning,
    /// The check could not be run (no probe account configured...).
    Unknown,
    /// Broken, or too slow.
    Critical,
}

impl State {
    /// The plugin exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    pub fn exit_code(self) -> u8 {
        match self {
            State::Ok => 0,
            State::Warning => 1,
            State::Critical => 2,
            State::Unknown => 3,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Ok => "OK",
            State::Warning => "WARNING",
            State::Unknown => "UNKNOWN",
            State::Critical => "CRITICAL",
        })
    }
}

/// One timed step of a check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// What it did (`connect`, `banner`, `login`...).
    pub name: &'static str,
    /// How long it took.
    pub ms: f64,
}

/// The result of one check on one server.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The server's name in the config.
    pub server: String,
    /// The check (`smtp`, `imap`, `e2e:store1`...).
    pub check: String,
    /// Its state.
    pub state: State,
    /// Time of the whole check.
    pub elapsed_ms: f64,
    /// Time of each step, in order.
    pub steps: Vec<Step>,
    /// What was found.
    pub message: String,
}

/// Why a check failed.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The step it failed in.
    pub step: &'static str,
    /// What happened.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step, self.message)
    }
}

impl Failure {
    /// A failure in `step`.
    pub fn new(step: &'static str, message: impl fmt::Display) -> Self {
        Failure {
            step,
            message: message.to_string(),
        }
    }
}

/// Times steps against the check's deadline.
pub struct Run {
    started: Instant,
    deadline: Instant,
    steps: Vec<Step>,
    warnings: Vec<String>,
}

impl Run {
    /// A run that must finish within `timeout`.
    pub fn new(timeout: Duration) -> Self {
        let started = Instant::now();
        Run {
            started,
            deadline: started + timeout,
            steps: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Something that works but needs a human soon (a certificate about to expire): a check
    /// that succeeds is WARNING.
    pub fn warn(&mut self, message: impl Into<String>) {
        self.warnings.push(message.into());
    }

    /// Runs one step: its time is recorded; an error or the deadline ends the check.
    pub async fn step<T, E: fmt::Display>(
        &mut self,
        name: &'static str,
        fut: impl Future<Output = Result<T, E>>,
    ) -> Result<T, Failure> {
        let t = Instant::now();
        let r = timeout_at(self.deadline, fut).await;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        match r {
            Err(_) => Err(Failure::new(
                name,
                format!(
                    "no answer within {:.1} s",
                    (self.deadline - self.started).as_secs_f64()
                ),
            )),
            Ok(Err(e)) => {
                self.steps.push(Step { name, ms });
                Err(Failure::new(name, e))
            }
            Ok(Ok(v)) => {
                self.steps.push(Step { name, ms });
                Ok(v)
            }
        }
    }

    /// The outcome: CRITICAL on failure, else by the elapsed time against the thresholds.
    pub fn finish(
        self,
        server: &str,
        check: &str,
        result: Result<String, Failure>,
        warning: Duration,
        critical: Duration,
    ) -> Outcome {
        let elapsed = self.started.elapsed();
        let (state, message) = match result {
            Err(f) => (State::Critical, f.to_string()),
            Ok(m) if elapsed > critical => (
                State::Critical,
                format!("{m}; slower than {} ms", critical.as_millis()),
            ),
            Ok(m) if elapsed > warning => (
                State::Warning,
                format!("{m}; slower than {} ms", warning.as_millis()),
            ),
            Ok(m) if !self.warnings.is_empty() => {
                (State::Warning, format!("{m}; {}", self.warnings.join("; ")))
            }
            Ok(m) => (State::Ok, m),
        };
        Outcome {
            server: server.to_string(),
            check: check.to_string(),
            state,
            elapsed_ms: elapsed.as_secs_f64() * 1000.0,
            steps: self.steps,
            message,
        }
    }
}

/// An outcome for a check that could not run.
pub fn unknown(server: &str, check: &str, message: impl Into<String>) -> Outcome {
    Outcome {
        server: server.to_string(),
        check: check.to_string(),
        state: State::Unknown,
        elapsed_ms: 0.0,
        steps: Vec::new(),
        message: message.into(),
    }
}

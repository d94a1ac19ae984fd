//! A check's result: state, message and the time of each step; and the run that times them
//! against one deadline, so a server that accepts the connection and then says nothing is
//! CRITICAL when the deadline passes, naming the step it hung in.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use mailfleet_mailclient::{Clock, MailError, TlsInfo};
use serde::Serialize;
use tokio::time::Instant;

pub use mailfleet_mailclient::Step;
pub use mailfleet_notify::State;

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
    /// The quantity measured, for charts: the queue's messages, a disk's percent used...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

impl Outcome {
    /// The outcome with the quantity it measured.
    pub fn with_value(mut self, value: f64) -> Self {
        self.value = Some(value);
        self
    }

    /// The outcome as the alarms see it.
    pub fn observation(&self) -> mailfleet_notify::Observation<'_> {
        mailfleet_notify::Observation {
            server: &self.server,
            check: &self.check,
            state: self.state,
            message: &self.message,
        }
    }
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

impl From<MailError> for Failure {
    fn from(e: MailError) -> Self {
        Failure {
            step: e.step(),
            message: e.kind().to_string(),
        }
    }
}

/// Times steps against the check's deadline: the clients' commands through [`Run::clock`],
/// other work through [`Run::step`].
pub struct Run {
    started: Instant,
    clock: Clock,
    warnings: Vec<String>,
}

impl Run {
    /// A run that must finish within `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Run {
            started: Instant::now(),
            clock: Clock::new(timeout).within(timeout).recording(),
            warnings: Vec::new(),
        }
    }

    /// The clock the check's clients run their commands on: the check's deadline, and its
    /// step timings.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Something that works but needs a human soon (a certificate about to expire): a check
    /// that succeeds is WARNING.
    pub fn warn(&mut self, message: impl Into<String>) {
        self.warnings.push(message.into());
    }

    /// Records a handshake's certificate warning.
    pub fn note_tls(&mut self, info: Option<&TlsInfo>) {
        if let Some(w) = info.and_then(TlsInfo::warning) {
            self.warn(w);
        }
    }

    /// Runs one step: its time is recorded; an error or the deadline ends the check.
    pub async fn step<T, E: fmt::Display>(
        &mut self,
        name: &'static str,
        fut: impl Future<Output = Result<T, E>>,
    ) -> Result<T, Failure> {
        match self.clock.time(name, fut).await {
            Err(timeout) => Err(timeout.into()),
            Ok(Err(e)) => Err(Failure::new(name, e)),
            Ok(Ok(v)) => Ok(v),
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
            steps: self.clock.steps(),
            message,
            value: None,
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
        value: None,
    }
}

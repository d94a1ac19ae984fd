//! Deadlines and step timing: every command a client sends runs under the clock's
//! per-command deadline (and an overall one, when set), and a recording clock keeps how long
//! each step took, for the probes' step timings.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::time::{Instant, timeout_at};

use crate::error::{ErrorKind, MailError};

/// One timed step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// What it did (`connect`, `banner`, `login`...).
    pub name: &'static str,
    /// How long it took, in milliseconds.
    pub ms: f64,
}

/// The deadlines of a client's commands, and where their timings go.
#[derive(Debug, Clone)]
pub struct Clock {
    command: Duration,
    /// The overall deadline and the budget it was set from.
    until: Option<(Instant, Duration)>,
    record: Option<Arc<Mutex<Vec<Step>>>>,
}

impl Clock {
    /// Every command must be answered within `command`.
    pub fn new(command: Duration) -> Self {
        Clock {
            command,
            until: None,
            record: None,
        }
    }

    /// Every command must also be answered within `budget` from now: all of them together.
    pub fn within(mut self, budget: Duration) -> Self {
        self.until = Some((Instant::now() + budget, budget));
        self
    }

    /// Keeps each step's time (read with [`Clock::steps`], shared by every clone).
    pub fn recording(mut self) -> Self {
        self.record = Some(Arc::new(Mutex::new(Vec::new())));
        self
    }

    /// The same deadlines without recording: for polling loops timed as one step.
    pub fn quiet(&self) -> Clock {
        Clock {
            record: None,
            ..self.clone()
        }
    }

    /// The per-command deadline.
    pub fn command_timeout(&self) -> Duration {
        self.command
    }

    /// The steps recorded so far, in order.
    pub fn steps(&self) -> Vec<Step> {
        self.record
            .as_ref()
            .map(|r| r.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .unwrap_or_default()
    }

    /// The deadline for a command starting now, and the limit to name if it passes.
    fn deadline(&self) -> (Instant, Duration) {
        let own = (Instant::now() + self.command, self.command);
        match self.until {
            Some(u) if u.0 < own.0 => u,
            _ => own,
        }
    }

    /// Runs `fut` as step `step` under the deadline: its time is recorded when it finishes
    /// (successfully or not); the deadline's passing is a timeout error.
    pub async fn time<F: Future>(
        &self,
        step: &'static str,
        fut: F,
    ) -> Result<F::Output, MailError> {
        let (at, limit) = self.deadline();
        let started = Instant::now();
        let r = timeout_at(at, fut).await;
        match r {
            Err(_) => Err(MailError::new(step, ErrorKind::Timeout(limit))),
            Ok(v) => {
                if let Some(rec) = &self.record {
                    rec.lock().unwrap_or_else(|p| p.into_inner()).push(Step {
                        name: step,
                        ms: started.elapsed().as_secs_f64() * 1000.0,
                    });
                }
                Ok(v)
            }
        }
    }

    /// [`Clock::time`] for a fallible future: its error becomes a [`MailError`] of this step.
    pub async fn step<T>(
        &self,
        step: &'static str,
        fut: impl Future<Output = Result<T, ErrorKind>>,
    ) -> Result<T, MailError> {
        self.time(step, fut)
            .await?
            .map_err(|kind| MailError::new(step, kind))
    }

    /// [`Clock::time`] for a fallible future whose errors are already [`MailError`]s.
    pub async fn run<T>(
        &self,
        step: &'static str,
        fut: impl Future<Output = Result<T, MailError>>,
    ) -> Result<T, MailError> {
        self.time(step, fut).await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn commands_time_out_and_steps_are_recorded() {
        let clock = Clock::new(Duration::from_secs(5)).recording();
        let ok = clock
            .time("banner", tokio::time::sleep(Duration::from_secs(1)))
            .await;
        assert!(ok.is_ok());
        let late = clock
            .time("select", tokio::time::sleep(Duration::from_secs(10)))
            .await
            .unwrap_err();
        assert!(late.is_timeout());
        assert_eq!(late.to_string(), "select: no answer within 5.0 s");
        let steps = clock.steps();
        assert_eq!(steps.len(), 1, "a step that timed out is not a timing");
        assert_eq!(steps[0].name, "banner");
        assert!((steps[0].ms - 1000.0).abs() < 50.0, "{steps:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_overall_budget_caps_every_command() {
        let clock = Clock::new(Duration::from_secs(30)).within(Duration::from_secs(4));
        clock
            .time("login", tokio::time::sleep(Duration::from_secs(3)))
            .await
            .unwrap();
        let e = clock
            .time("fetch", tokio::time::sleep(Duration::from_secs(2)))
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "fetch: no answer within 4.0 s");
        let quiet = Clock::new(Duration::from_secs(1)).recording().quiet();
        quiet.time("noop", async {}).await.unwrap();
        assert!(quiet.steps().is_empty());
    }
}

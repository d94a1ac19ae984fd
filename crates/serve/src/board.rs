//! What the daemon's parts know now, shared with the dashboard in the same process: the
//! monitor's latest round (each check of each server with its state), written by the
//! monitor part after each round and read by every page.

use std::sync::RwLock;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One check of one server, as the latest round found it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The server.
    pub server: String,
    /// The check (`imap`, `smtp`, `replica`, ...).
    pub check: String,
    /// `OK`, `WARNING`, `CRITICAL` or `UNKNOWN`.
    pub state: String,
    /// What it found.
    pub message: String,
    /// How long it took.
    pub elapsed_ms: f64,
}

/// The latest round.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Round {
    /// Its number since the monitor started (0: none yet).
    pub number: u64,
    /// When it ended.
    pub at: Option<DateTime<Utc>>,
    /// Its checks.
    pub rows: Vec<Row>,
}

/// A backup started from the dashboard.
#[derive(Debug, Clone, Serialize)]
pub struct BackupJob {
    /// Who started it.
    pub operator: String,
    /// When.
    pub started: DateTime<Utc>,
    /// When it ended (`None`: it runs).
    pub ended: Option<DateTime<Utc>>,
    /// What it did, or why it failed.
    pub result: Option<String>,
}

/// The board every part writes to and the dashboard reads; pages watching it are told of
/// each new round.
#[derive(Debug)]
pub struct Board {
    round: RwLock<Round>,
    changed: tokio::sync::watch::Sender<u64>,
    backup: RwLock<Option<BackupJob>>,
    next_backup: RwLock<Option<DateTime<Utc>>>,
}

impl Default for Board {
    fn default() -> Self {
        Board {
            round: RwLock::default(),
            changed: tokio::sync::watch::channel(0).0,
            backup: RwLock::default(),
            next_backup: RwLock::default(),
        }
    }
}

impl Board {
    /// Puts the monitor's latest round up.
    pub fn set_round(&self, number: u64, rows: Vec<Row>) {
        // A panic while the lock was held leaves a whole round or the one before: no half.
        let mut r = self.round.write().unwrap_or_else(|p| p.into_inner());
        *r = Round {
            number,
            at: Some(Utc::now()),
            rows,
        };
        drop(r);
        self.changed.send_modify(|n| *n += 1);
    }

    /// Tells of each change from now on.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The latest backup started from the dashboard.
    pub fn backup(&self) -> Option<BackupJob> {
        self.backup
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Starts a backup job by `operator`, unless one runs: whether it started.
    pub fn start_backup(&self, operator: &str) -> bool {
        let mut b = self.backup.write().unwrap_or_else(|p| p.into_inner());
        if b.as_ref().is_some_and(|j| j.ended.is_none()) {
            return false;
        }
        *b = Some(BackupJob {
            operator: operator.to_string(),
            started: Utc::now(),
            ended: None,
            result: None,
        });
        true
    }

    /// Ends the running backup job with `result`.
    pub fn end_backup(&self, result: String) {
        let mut b = self.backup.write().unwrap_or_else(|p| p.into_inner());
        if let Some(j) = b.as_mut() {
            j.ended = Some(Utc::now());
            j.result = Some(result);
        }
    }

    /// Says when the schedule backs up next (`None`: no schedule runs).
    pub fn set_next_backup(&self, at: Option<DateTime<Utc>>) {
        *self.next_backup.write().unwrap_or_else(|p| p.into_inner()) = at;
    }

    /// When the schedule backs up next.
    pub fn next_backup(&self) -> Option<DateTime<Utc>> {
        *self.next_backup.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The latest round.
    pub fn round(&self) -> Round {
        self.round.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

//! The status file a backup run leaves for the monitor: when the last run started and
//! ended, how it ended, and when the newest good backup finished.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One backup run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRun {
    /// When it started.
    pub started: DateTime<Utc>,
    /// When it ended, if it did.
    pub finished: Option<DateTime<Utc>>,
    /// `ok`, `failed`, `aborted` (target not answering), `skipped` (mount failed).
    pub result: String,
    /// Messages read.
    #[serde(default)]
    pub messages: u64,
    /// Bytes written to the repository.
    #[serde(default)]
    pub bytes: u64,
    /// What went wrong, if anything.
    #[serde(default)]
    pub error: Option<String>,
}

/// The status file's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupStatus {
    /// The latest run, whatever its result.
    pub last_run: Option<BackupRun>,
    /// When the newest good backup finished.
    pub last_success: Option<DateTime<Utc>>,
}

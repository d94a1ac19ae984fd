//! Why a move step failed, and whether trying again can help.

use std::path::PathBuf;

use mailfleet_remote::RemoteError;

use crate::phase::Phase;

/// A move step that failed.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    /// A store lacks what a move needs (a doveadm port, a passwd-file).
    #[error("{server}: {message}")]
    Config {
        /// The store.
        server: String,
        /// What is missing.
        message: String,
    },
    /// A command on a store failed or did not answer (its kind says whether a retry can help).
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// The upgrade marks could not be read.
    #[error(transparent)]
    Marks(#[from] mailfleet_core::upgrade_marks::MarksError),
    /// The directory refused or failed (reading the account, locking, switching).
    #[error("directory: {0}")]
    Directory(String),
    /// The request names no accounts, or no target where one is needed.
    #[error("{0}")]
    Request(&'static str),
    /// The two copies differ after the last pass: the account stays on its source.
    #[error("{address}: the copy differs from the source, not switched: {}", differences.join("; "))]
    Verify {
        /// The account.
        address: String,
        /// What differs.
        differences: Vec<String>,
    },
    /// The journal failed: the move's progress cannot be recorded, so it does not go on.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A move failed and the unlock after it failed too: the account is still locked.
    #[error(
        "{address}: {error}; and the unlock failed, the account is STILL LOCKED ({unlock}): run `mailfleet move resume` or `mailfleet move abort {address}`"
    )]
    StillLocked {
        /// The account.
        address: String,
        /// Why the move failed.
        error: Box<MoveError>,
        /// Why the unlock failed.
        unlock: String,
    },
    /// doveadm answered something this version does not read.
    #[error("{server}: unexpected doveadm output: {line:?}")]
    Output {
        /// The store.
        server: String,
        /// The line.
        line: String,
    },
}

impl MoveError {
    /// Whether running the step again may succeed (a timeout, a dropped connection).
    pub fn is_transient(&self) -> bool {
        matches!(self, MoveError::Remote(e) if e.is_transient())
    }
}

/// The journal failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The database failed.
    #[error("move journal {path}: {source}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// The error.
        source: rusqlite::Error,
    },
    /// The data directory could not be made.
    #[error("move journal {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A phase this version does not know: written by a newer one.
    #[error("move journal {path}: move {id} has an unknown phase {phase:?}")]
    Phase {
        /// The file.
        path: PathBuf,
        /// The move.
        id: i64,
        /// What is stored.
        phase: String,
    },
    /// The account has a move that is not over.
    #[error("{address} is already being moved (move {id}, {phase}): see `mailfleet move status`")]
    Busy {
        /// The account.
        address: String,
        /// That move.
        id: i64,
        /// Its phase.
        phase: Phase,
    },
    /// Another process runs this move.
    #[error("move {id} of {address} is being run by process {pid}")]
    Owned {
        /// The move.
        id: i64,
        /// The account.
        address: String,
        /// That process.
        pid: u32,
    },
}

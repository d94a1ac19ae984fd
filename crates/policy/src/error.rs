//! What can go wrong in the policy service.

/// A policy service error.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The embedded state database failed.
    #[error("policy state {path}: {source}")]
    State {
        /// The database file.
        path: String,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// A socket or file failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A Postfix command (postqueue, postsuper) failed.
    #[error(transparent)]
    Postfix(#[from] mailfleet_core::postfix::PostfixError),
    /// Redis failed or did not answer in time.
    #[error("redis: {0}")]
    Redis(String),
    /// The account directory failed.
    #[error(transparent)]
    Directory(#[from] mailfleet_core::directory::DirectoryError),
    /// An account operation was refused or failed.
    #[error(transparent)]
    Account(mailfleet_core::accounts::AccountError),
    /// What the command asks about is not there (no held mail of an account).
    #[error("{0}")]
    NotFound(String),
}

impl PolicyError {
    /// An I/O error while doing `what`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> PolicyError {
        let what = what.into();
        move |source| PolicyError::Io { what, source }
    }
}

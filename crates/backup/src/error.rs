//! What can go wrong in a backup, a restore or a repository check.

use std::path::PathBuf;

/// A backup, restore or repository error.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A file of the mail store or of a restore target.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The repository target failed or did not answer in time.
    #[error("repository {what}: {message}")]
    Target {
        /// The operation and key.
        what: String,
        /// What happened.
        message: String,
    },
    /// The repository target did not answer within its deadline.
    #[error("repository did not answer within {secs} s ({what}): aborted")]
    Hung {
        /// The operation.
        what: String,
        /// The deadline.
        secs: u64,
    },
    /// Something in the repository is damaged or missing.
    #[error("repository damaged: {0}")]
    Corrupt(String),
    /// A snapshot, account or message asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Another process holds a lock that conflicts.
    #[error("{0}")]
    Locked(String),
    /// A mailbox store could not be used for a restore (no IMAP port, TLS settings that
    /// cannot be loaded).
    #[error("mailbox store {server}: {message}")]
    Store {
        /// The store's name.
        server: String,
        /// What is wrong.
        message: String,
    },
    /// An IMAP exchange with a store failed or timed out.
    #[error("mailbox store {server} ({account}): {error}")]
    Imap {
        /// The store's name.
        server: String,
        /// The account being restored.
        account: String,
        /// What failed, with the server's words.
        error: mailfleet_mailclient::MailError,
    },
    /// The request itself cannot be done as asked (an unknown store, no keep policy).
    #[error("{0}")]
    Usage(String),
    /// The account directory failed.
    #[error("the account directory: {0}")]
    Directory(#[from] mailfleet_core::directory::DirectoryError),
    /// The repository is not one this version understands.
    #[error("{0}")]
    Format(String),
}

impl BackupError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> BackupError {
        let path = path.into();
        move |source| BackupError::Io { path, source }
    }
}

//! The exit codes of every command, in one table (the README has it too), and the mapping
//! from the libraries' typed errors to them.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done, nothing wrong found |
//! | 1 | done, and found a problem that needs a human (weak passwords, unreadable log input) |
//! | 2 | usage or config error: nothing was done |
//! | 3 | failed: an error stopped the command (the message says which) |
//! | 4 | the backup repository is damaged |
//! | 5 | unreachable: a target or server did not answer in time |
//! | 6 | skipped: the backup's `pre` hook failed, nothing was attempted |
//!
//! `probe` and `check shift` use the monitoring-plugin codes instead: 0 OK, 1 WARNING,
//! 2 CRITICAL, 3 UNKNOWN (a usage or config error is UNKNOWN).

use std::process::ExitCode;

/// Done, nothing wrong found.
pub(crate) const OK: u8 = 0;
/// Done, and found a problem that needs a human.
pub(crate) const PROBLEM: u8 = 1;
/// Usage or config error.
pub(crate) const USAGE: u8 = 2;
/// An error stopped the command.
pub(crate) const FAILED: u8 = 3;
/// The backup repository is damaged.
pub(crate) const DAMAGED: u8 = 4;
/// A target or server did not answer in time.
pub(crate) const UNREACHABLE: u8 = 5;
/// The backup's `pre` hook failed.
pub(crate) const SKIPPED: u8 = 6;

/// The exit code for an error that stopped a command: the first typed error in its chain
/// that says more than "failed".
pub(crate) fn of_error(e: &anyhow::Error) -> u8 {
    use mailfleet_backup::BackupError;
    for cause in e.chain() {
        if cause.is::<mailfleet_core::config::ConfigError>() || cause.is::<clap::Error>() {
            return USAGE;
        }
        if let Some(b) = cause.downcast_ref::<BackupError>() {
            return match b {
                BackupError::Usage(_) => USAGE,
                BackupError::Corrupt(_) => DAMAGED,
                BackupError::Hung { .. } => UNREACHABLE,
                BackupError::Imap { error, .. } if error.is_timeout() => UNREACHABLE,
                _ => FAILED,
            };
        }
        if let Some(u) = cause.downcast_ref::<Usage>() {
            let _ = u;
            return USAGE;
        }
    }
    FAILED
}

/// A command line that asks for something that cannot be (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Usage(pub(crate) String);

/// An exit code.
pub(crate) fn code(c: u8) -> ExitCode {
    ExitCode::from(c)
}

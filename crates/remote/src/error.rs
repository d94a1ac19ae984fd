//! Why a command on a server gave no answer, or a bad one.

use std::time::Duration;

/// A failure reaching or running something on one server; always names the server.
#[derive(Debug, thiserror::Error)]
#[error("{server}: {kind}")]
pub struct RemoteError {
    /// The server (its name in the fleet).
    pub server: String,
    /// What went wrong.
    pub kind: RemoteErrorKind,
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum RemoteErrorKind {
    /// The server's host key is not in `known_hosts`: never accepted silently.
    #[error(
        "host key of {destination} is not in {known_hosts}; it offers {fingerprints}. If that is the server's key, add it (ssh-keyscan) and try again"
    )]
    UnknownHostKey {
        /// `user@host:port`.
        destination: String,
        /// The file searched.
        known_hosts: String,
        /// The key fingerprints the server offers (as `ssh-keygen -l` prints them).
        fingerprints: String,
    },
    /// The server's host key differs from the one in `known_hosts`.
    #[error(
        "host key of {destination} has CHANGED from the one in {known_hosts}: it now offers {fingerprints}. Refused: check the server before replacing the key"
    )]
    ChangedHostKey {
        /// `user@host:port`.
        destination: String,
        /// The file holding the old key.
        known_hosts: String,
        /// What the server offers now.
        fingerprints: String,
    },
    /// No SSH connection could be made (refused, unreachable, authentication refused).
    #[error("cannot connect to {destination}: {message}")]
    Connect {
        /// `user@host:port`.
        destination: String,
        /// The SSH client's message.
        message: String,
        /// Whether trying again later can help (not for a refused key).
        transient: bool,
    },
    /// The command (or the connection for it) took longer than its deadline.
    #[error("{command}: no answer within {:.1} s", .deadline.as_secs_f64())]
    Timeout {
        /// The command.
        command: String,
        /// Its deadline.
        deadline: Duration,
    },
    /// The program could not be started (not installed, not executable).
    #[error("{command}: cannot start: {message}")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        message: String,
    },
    /// It ran and exited with an error.
    #[error("{command}: {status}{}", if .stderr.is_empty() { String::new() } else { format!(": {}", .stderr) })]
    Failed {
        /// The command.
        command: String,
        /// `exit 2`, `killed by signal 9`.
        status: String,
        /// The start of its error output.
        stderr: String,
    },
    /// The connection broke while the command ran.
    #[error("{command}: connection lost: {message}")]
    Lost {
        /// The command.
        command: String,
        /// What the client said.
        message: String,
    },
}

impl RemoteError {
    pub(crate) fn new(server: &str, kind: RemoteErrorKind) -> Self {
        RemoteError {
            server: server.to_string(),
            kind,
        }
    }

    /// Whether the same command may succeed later (a server down or slow, a lost link); host
    /// key problems, refused logins and commands that failed are not.
    pub fn is_transient(&self) -> bool {
        match &self.kind {
            RemoteErrorKind::Connect { transient, .. } => *transient,
            RemoteErrorKind::Timeout { .. } | RemoteErrorKind::Lost { .. } => true,
            _ => false,
        }
    }

    /// Whether the deadline passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, RemoteErrorKind::Timeout { .. })
    }

    /// Whether the server was not reached at all (the command never ran).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self.kind,
            RemoteErrorKind::Connect { .. }
                | RemoteErrorKind::UnknownHostKey { .. }
                | RemoteErrorKind::ChangedHostKey { .. }
        )
    }
}

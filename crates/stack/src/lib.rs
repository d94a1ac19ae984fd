//! A real mail stack on loopback, for the demo, the integration tests and benchmarks:
//! one Postfix MTA, two Dovecot mailbox stores, an OpenLDAP `slapd` and Redis, each with its
//! own config, logs and PID file under one base directory, stopped only by those PIDs.
//!
//! Layout: [`lifecycle`] (up, down, status), one file per daemon ([`postfix`], [`dovecot`],
//! [`slapd`], [`redis`]), [`demo`] (the demo accounts and the `mailfleet.toml` describing the
//! stack), [`process`] (spawning and stopping by PID), [`install`] (Debian packages),
//! [`testkit`] (a stack in a temp dir that stops on drop), [`apt`] (each server's package
//! root and the local repository the upgrade tests fill), [`serve`] (`mailfleet serve` beside
//! the demo fleet).

pub mod apt;
pub mod certs;
pub mod demo;
pub mod dovecot;
pub mod install;
pub mod layout;
pub mod lifecycle;
pub mod ports;
pub mod postfix;
pub mod process;
pub mod proxy;
pub mod rbldnsd;
pub mod redis;
pub mod serve;
pub mod slapd;
pub mod sshd;
pub mod testkit;

pub use layout::Layout;
pub use lifecycle::{ServiceStatus, StackInfo, StackOptions, Started, down, status, up};
pub use ports::StackPorts;
pub use testkit::TestStack;

/// Why the stack could not be started, queried or stopped.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// Programs the stack needs are not installed.
    #[error(
        "missing programs: {programs}; install the Debian packages: apt-get install {packages} (or run `mailfleet demo up --install` as root)"
    )]
    Missing {
        /// The programs not found.
        programs: String,
        /// The packages that provide them.
        packages: String,
    },
    /// A file or directory could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A command failed.
    #[error("{command} failed: {message}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status and output.
        message: String,
    },
    /// A daemon did not come up in time.
    #[error("{service} did not start within {secs} s: {detail}")]
    Timeout {
        /// The daemon.
        service: String,
        /// The deadline.
        secs: u64,
        /// What to look at.
        detail: String,
    },
    /// The stack in this base directory is partly running.
    #[error("{0}")]
    State(String),
    /// Some of the stack's ports are taken by another program.
    #[error("ports already in use on {host}: {busy}; choose other ports with --port-base")]
    PortsBusy {
        /// The stack's address.
        host: String,
        /// Each busy `address:port (service)`.
        busy: String,
    },
    /// Seeding the accounts failed.
    #[error("seeding the demo accounts: {0}")]
    Seed(String),
}

/// Shorthand for an I/O error on a path.
pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> StackError + '_ {
    move |source| StackError::Io {
        path: path.to_path_buf(),
        source,
    }
}

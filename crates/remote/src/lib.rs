//! How mailfleet reaches each server's own tools: an [`Access`] per server (the local machine,
//! or SSH with the operator's keys, `known_hosts` and jump hosts), and a [`Reach`] that runs
//! argument vectors there with a deadline and bounded output, reusing one multiplexed SSH
//! connection per server across commands and rounds.
//!
//! Layout: [`access`] (what the config says), [`command`] (a command and what it gave back),
//! [`reach`] (the connection pool and running), `spawn` (a started command and its pipes),
//! `ssh` (master connections, sorting the client's errors), [`blocking`] (a streamed output
//! read from a plain thread), [`fanout`] (one command on many
//! servers), [`hostkey`] (fingerprints for the errors), [`error`].

pub mod access;
pub mod blocking;
pub mod command;
pub mod error;
pub mod fanout;
pub mod hostkey;
pub mod reach;
mod spawn;
mod ssh;

pub use access::{Access, SshTarget};
pub use command::{Cmd, Output};
pub use error::{RemoteError, RemoteErrorKind};
pub use reach::{Reach, Stream, Streamed};

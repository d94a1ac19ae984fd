//! Deep protocol probes: each check does what a user or a peer server does (log in, open the
//! mailbox, fetch a message, deliver one end to end), times every step, and gives a
//! monitoring-plugin state.
//!
//! Layout: [`outcome`] (states, steps, the per-check deadline), one file per protocol
//! ([`smtp`], [`imap`], [`pop3`], [`ldap`], [`http`]; the clients are `mailclient`'s),
//! [`e2e`] (SMTP in, IMAP out), [`host`] (a machine's resources, read here by [`host_local`] or on the server by
//! [`host_remote`]), [`queue`] (Postfix's
//! queue), [`locked`] (accounts a move left locked), [`replica`] (directory replicas beside their masters), [`traffic`] (each MTA's
//! messages per hour from its log, for the monitor), and [`plan`] (which checks a fleet gets, run concurrently).

pub mod alarm_log;
pub mod backup;
pub mod daemon;
pub mod e2e;
pub mod history;
pub mod host;
pub mod host_local;
pub mod host_remote;
pub mod http;
pub mod imap;
pub mod ldap;
pub mod locked;
pub mod metrics;
pub mod monitor;
pub mod outcome;
pub mod plan;
pub mod pop3;
pub mod queue;
pub mod replica;
mod rollup;
pub mod shift;
pub mod smtp;
pub mod stuck;
pub mod traffic;

pub use outcome::{Outcome, State, Step};
pub use plan::{Plan, round, run};

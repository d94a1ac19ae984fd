//! `mailfleet serve`: one daemon running the parts the config enables (`[serve] parts`: the
//! monitor's rounds and `/metrics`, the policy server with its milter and loops, scheduled
//! backups, the dashboard), each given
//! by its caller, under one shutdown (SIGTERM, SIGINT), and reloaded on SIGHUP: a config with
//! a mistake is refused with the old one kept running and an alarm.
//!
//! Layout: [`supervisor`] (the parts, their generations and the reload), [`board`] (what
//! the parts know now, shared with the dashboard), [`web`] (the dashboard: pages, API,
//! sessions and the login brake), [`schedule`] (backups at their times), [`error`].

pub mod board;
pub mod error;
pub mod schedule;
pub mod supervisor;
pub mod web;

pub use error::ServeError;
pub use supervisor::{Part, serve};

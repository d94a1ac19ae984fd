//! `mailfleet serve`: one daemon running the parts the config enables (`[serve] parts`: the
//! monitor's rounds and `/metrics`, the policy server with its milter and loops, scheduled
//! backups, the dashboard, moves and upgrades run for the dashboard and the command line),
//! each given
//! by its caller, under one shutdown (SIGTERM, SIGINT), and reloaded on SIGHUP: a config with
//! a mistake is refused with the old one kept running and an alarm.
//!
//! Layout: [`supervisor`] (the parts, their generations and the reload), [`board`] (what
//! the parts know now, shared with the dashboard), [`web`] (the dashboard: pages, API,
//! sessions and the login brake), [`schedule`] (backups at their times), [`runs`] (moves and
//! upgrades on threads of their own) and [`runs_socket`] (the command line handing them
//! over), [`error`].

pub mod board;
pub mod error;
pub mod runs;
pub mod runs_socket;
pub mod schedule;
pub mod supervisor;
pub mod web;

pub use error::ServeError;
pub use supervisor::{Part, serve};

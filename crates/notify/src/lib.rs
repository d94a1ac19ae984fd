//! Alarms and notifications, shared by the monitor, the policy server and backups.
//!
//! Layout: [`state`] (the monitoring-plugin states), [`alarm`] (which rounds of observations
//! call for a notification: a change held for some rounds, reminders, recovery, flap
//! damping), [`send`] (a notification to the log, by mail through the fleet's MTA, and to a
//! webhook), [`template`] (notices an admin writes, filled in).

pub mod alarm;
pub mod send;
pub mod state;
pub mod template;

pub use alarm::{Alarms, Kind, Notification, Observation, Policy};
pub use send::{Notifier, subject};
pub use state::State;

//! Alarms and notifications, shared by the monitor, the policy server and backups.
//!
//! Layout: [`state`] (the monitoring-plugin states), [`alarm`] (which rounds of observations
//! call for a notification: a change held for some rounds, reminders, recovery, flap
//! damping), [`send`] (a notification to the log, by mail through the fleet's MTA, and to a
//! webhook), [`record`] (alarms sent as kept and shown, and which still hold), [`template`]
//! (notices an admin writes, filled in).

pub mod alarm;
pub mod record;
pub mod send;
pub mod state;
pub mod template;

pub use alarm::{Alarms, Kind, Notification, Observation, Policy};
pub use send::{Notifier, subject};
pub use state::State;

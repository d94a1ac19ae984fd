//! Rolling upgrades of a mail fleet: patched in the order the field has learned (directory
//! master, its replicas, MTAs, proxies, then mailbox stores), one server of a redundancy group
//! at a time, canaries first and watched, with spacing, maintenance windows and a backup
//! around each store's update.
//!
//! Layout: [`order`] (each server's place and why), [`window`] (when a maintenance window
//! opens, in its time zone), [`plan`] (the steps with their gates and a timeline from an
//! injected clock), [`holds`] (packages kept out of the OS's automatic updates),
//! [`reboots`] (staggered automatic reboot times), [`apt`] (apt through a server's access),
//! [`check`] (what would slip past the holds), [`restart`] (daemons running replaced files),
//! [`reboot`] (a reboot the update asks for), [`journal`] (every run's steps, persisted), [`notice`] (users told of their store's window),
//! [`run`] (a plan executed server by server, with its gates in `gate` and the drain of a non-store in `stop`), [`update`] (the package manager through a server's access), [`summary`] (what the admins are told at the end), [`hooks`] (the gates, drains and backups its
//! caller gives it), [`command`] (the plan of a loaded config), [`error`].

pub mod apt;
pub mod check;
pub mod command;
pub mod error;
mod gate;
pub mod holds;
pub mod hooks;
pub mod journal;
pub mod notice;
pub mod order;
pub mod plan;
pub mod reboot;
pub mod reboots;
pub mod restart;
pub mod run;
mod stop;
pub mod summary;
pub mod update;
pub mod window;

pub use error::PlanError;
pub use plan::{Plan, PlanInput, Step, plan};

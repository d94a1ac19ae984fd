//! The backup commands as library code, for the command line and the daemon alike: each
//! takes the config and typed options and returns a typed result.
//!
//! Layout: [`open`] (the repository behind its worker, keys), [`job`] (`backup run` with its
//! hooks, status files and alarm), [`on_store`] (each SSH-reached store backed up on itself), [`restore`], [`repo`] (list, verify, forget, prune, diff).

pub mod job;
pub mod on_store;
pub mod open;
pub mod repo;
pub mod restore;

pub use open::open;

//! Outbound abuse control for Postfix: per-sender quotas whose excess is held and released
//! later at the allowed rate (never lost, never bounced), and per-mailbox send blocks kept in
//! the account directory.
//!
//! Layout: [`engine`] (the decisions), [`counters`] (sliding windows and held mail) with the
//! [`embedded`] store and the shared [`redis_store`], [`server`] (Postfix policy delegation), [`milter_server`] (for
//! `non_smtpd_milters`: mail from the sendmail binary), [`release`] (held mail back into the
//! queue), [`detect`] (compromised accounts), [`logwatch`] (Postfix's log: rejected
//! after counting, refused recipients), [`dnsbl`], [`postfix`] (the main.cf lines), [`service`] (all of it running), [`bench`] (a load generator for ours and the peers').

pub mod admin;
pub mod alerts;
pub mod audit;
pub mod bench;
pub mod client;
pub mod counters;
pub mod detect;
pub mod dnsbl;
pub mod embedded;
pub mod engine;
pub mod error;
pub mod logwatch;
pub mod milter_server;
pub mod postfix;
pub mod redis_store;
pub mod release;
pub mod server;
pub mod service;
pub mod sweep;

pub use engine::Engine;
pub use error::PolicyError;

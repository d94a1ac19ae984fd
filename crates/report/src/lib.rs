//! Log analytics for a mail fleet: reads Postfix, Dovecot and content-filter logs (files,
//! rotated sets, `.gz`, stdin) in one streaming pass on all cores, and builds totals that
//! agree with pflogsumm, per-machine and per-user profiles, the spam funnel and anomalies.
//!
//! Layout: [`syslog`] splits a line; [`postfix`], [`dovecot`] and [`filter`] classify it
//! into an [`event::Event`] ([`line`] drives them); [`input`] reads sources in chunks; [`pipeline`] parses chunks in
//! parallel and feeds the [`aggregate::Aggregator`] in order; [`output`] renders the
//! [`Report`] as tables, CSV or HTML (JSON is its serde form).

pub mod aggregate;
pub mod dovecot;
pub mod event;
pub mod filter;
pub mod input;
pub mod line;
pub mod mapped;
pub mod output;
pub mod pflogsumm;
pub mod pipeline;
pub mod postfix;
pub mod report;
pub mod syslog;

pub use pipeline::{Options, run};
pub use report::Report;

pub use line::{Hosts, LineParser, NO_HOST, classify_line};

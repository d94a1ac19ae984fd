//! Log analytics for a mail fleet: reads Postfix, Dovecot and content-filter logs (files,
//! rotated sets, `.gz`, stdin) in one streaming pass on all cores, and builds totals that
//! agree with pflogsumm, per-machine and per-user profiles, the spam funnel and anomalies.
//!
//! Layout: lines are classified by the `maillog` crate (re-exported here as [`syslog`],
//! [`postfix`], [`dovecot`], [`filter`], [`event`], [`line`]); [`input`] reads sources in
//! chunks; [`pipeline`] parses chunks in
//! parallel and feeds the [`aggregate::Aggregator`] in order; [`output`] renders the
//! [`Report`] as tables, CSV or HTML (JSON is its serde form); [`remote`] streams the logs
//! of the fleet's servers through their access.

pub mod aggregate;
pub mod input;
pub mod mapped;
pub mod output;
pub mod pflogsumm;
pub mod pipeline;
pub mod remote;
pub mod report;

pub use mailfleet_maillog::{dovecot, event, filter, line, postfix, syslog};

pub use pipeline::{Options, run};
pub use report::Report;

pub use mailfleet_maillog::{Hosts, LineParser, NO_HOST, classify_line};

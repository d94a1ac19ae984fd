//! Mail log lines classified into typed events: the one reader of Postfix, Dovecot and
//! content-filter lines, beneath log reports, the shift check and the policy server's log
//! watch. Pure (no I/O), never panics on any input, fuzzed.
//!
//! Layout: [`syslog`] splits a line (classic and RFC 3339 stamps, `maillog_file`, Dovecot's
//! own log); [`postfix`], [`dovecot`] and [`filter`] classify its message into an
//! [`event::Event`]; [`line`] drives them, reusing the parse of a repeated header.

pub mod dovecot;
pub mod event;
pub mod filter;
pub mod line;
pub mod postfix;
pub mod syslog;

pub use line::{Hosts, LineParser, NO_HOST, classify_line};

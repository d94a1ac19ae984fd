//! Log analytics for a mail fleet: reads Postfix, Dovecot and content-filter logs (files,
//! rotated sets, `.gz`, stdin) in one streaming pass on all cores, and builds totals that
//! agree with pflogsumm, per-machine and per-user profiles, the spam funnel and anomalies.
//!
//! Layout: [`syslog`] splits a line; [`postfix`], [`dovecot`] and [`filter`] classify it
//! into an [`event::Event`]; [`input`] reads sources in chunks; [`pipeline`] parses chunks in
//! parallel and feeds the [`aggregate::Aggregator`] in order; [`output`] renders the
//! [`Report`] as tables, CSV or HTML (JSON is its serde form).

pub mod aggregate;
pub mod dovecot;
pub mod event;
pub mod filter;
pub mod input;
pub mod output;
pub mod pflogsumm;
pub mod pipeline;
pub mod postfix;
pub mod report;
pub mod syslog;

pub use pipeline::{Options, run};
pub use report::Report;

use std::sync::Arc;

use event::{Event, Kind, Unknown};

/// Shares one `Arc<str>` per host between consecutive lines: a log has few hosts.
#[derive(Debug, Default)]
pub struct HostCache {
    last: Option<Arc<str>>,
    /// For lines without a host (Dovecot's own log file): the file's name stem.
    unnamed: Option<Arc<str>>,
}

impl HostCache {
    /// A cache whose hostless lines are attributed to `unnamed`.
    pub fn new(unnamed: Option<Arc<str>>) -> Self {
        HostCache {
            last: None,
            unnamed,
        }
    }

    fn get(&mut self, host: &[u8]) -> Arc<str> {
        if host.is_empty()
            && let Some(u) = &self.unnamed
        {
            return Arc::clone(u);
        }
        match &self.last {
            Some(h) if h.as_bytes() == host => Arc::clone(h),
            _ => {
                let h: Arc<str> = Arc::from(String::from_utf8_lossy(host));
                self.last = Some(Arc::clone(&h));
                h
            }
        }
    }
}

/// Classifies one line (without its newline); never fails: what is not understood becomes
/// [`Kind::Unparsed`] with the kind of line it is.
pub fn classify_line(line: &[u8], hosts: &mut HostCache) -> Event {
    let Some(l) = syslog::parse(line) else {
        return Event {
            stamp: syslog::Stamp {
                year: None,
                month: 0,
                day: 0,
                secs: 0,
            },
            host: hosts.get(b""),
            kind: Kind::Unparsed {
                kind: Unknown::NotSyslog,
            },
        };
    };
    let kind = if let Some(service) = postfix::service(l.program) {
        postfix::classify(service, l.msg)
    } else if dovecot::is_dovecot(l.program) {
        dovecot::classify(l.program, l.msg)
    } else if filter::is_filter(l.program) {
        filter::classify(l.program, l.msg)
    } else {
        let name = event::scan::text(&l.program[..l.program.len().min(40)]);
        Kind::Unparsed {
            kind: Unknown::Program(name),
        }
    };
    Event {
        stamp: l.stamp,
        host: hosts.get(l.host),
        kind,
    }
}

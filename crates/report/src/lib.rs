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

/// The hosts of one chunk: events carry an index into it, not the name, so no reference
/// count bounces between the parser and aggregator threads on every line.
#[derive(Debug, Default)]
pub struct Hosts {
    names: Vec<Arc<str>>,
    last: Option<u32>,
    /// For lines without a host (Dovecot's own log file): the file's name stem.
    unnamed: Option<Arc<str>>,
}

impl Hosts {
    /// A table whose hostless lines are attributed to `unnamed`.
    pub fn new(unnamed: Option<Arc<str>>) -> Self {
        Hosts {
            names: Vec::new(),
            last: None,
            unnamed,
        }
    }

    fn id(&mut self, host: &[u8]) -> u32 {
        let host: &[u8] = match &self.unnamed {
            Some(u) if host.is_empty() => u.as_bytes(),
            _ => host,
        };
        if let Some(i) = self.last
            && self.names[i as usize].as_bytes() == host
        {
            return i;
        }
        let i = match self.names.iter().position(|n| n.as_bytes() == host) {
            Some(i) => i,
            None => {
                self.names.push(Arc::from(String::from_utf8_lossy(host)));
                self.names.len() - 1
            }
        } as u32;
        self.last = Some(i);
        i
    }

    /// The names, indexed by [`Event::host`].
    pub fn into_names(self) -> Vec<Arc<str>> {
        self.names
    }
}

/// Classifies one line (without its newline); never fails: what is not understood becomes
/// [`Kind::Unparsed`] with the kind of line it is.
pub fn classify_line(line: &[u8], hosts: &mut Hosts) -> Event {
    let Some(l) = syslog::parse(line) else {
        return Event {
            stamp: syslog::Stamp {
                year: None,
                month: 0,
                day: 0,
                secs: 0,
            },
            host: hosts.id(b""),
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
        host: hosts.id(l.host),
        kind,
    }
}

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
pub mod pipeline;
pub mod postfix;
pub mod report;
pub mod syslog;

pub use pipeline::{Options, run};
pub use report::Report;

use event::{Event, Kind};

/// Classifies one line (without its newline); never fails: what is not understood becomes
/// [`Kind::Unparsed`] with the kind of line it is.
pub fn classify_line(line: &[u8]) -> Event {
    let Some(l) = syslog::parse(line) else {
        return Event {
            stamp: syslog::Stamp {
                year: None,
                month: 0,
                day: 0,
                secs: 0,
            },
            host: "".into(),
            kind: Kind::Unparsed {
                kind: "not a syslog line".into(),
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
        let name = String::from_utf8_lossy(&l.program[..l.program.len().min(40)]);
        Kind::Unparsed {
            kind: format!("program {name}").into(),
        }
    };
    Event {
        stamp: l.stamp,
        host: event::scan::text(l.host),
        kind,
    }
}

//! One line to one [`Event`]: split the syslog header, pick the parser by program, and
//! note the host. [`LineParser`] does it for a chunk, reusing the previous line's header
//! when the next line repeats it byte for byte (a daemon's burst within one second, the
//! bulk of a verbose log), which skips the header's parsing for those lines.

use std::sync::Arc;

use crate::event::{self, Event, Kind, Unknown};
use crate::postfix::Service;
use crate::syslog::{self, Stamp};
use crate::{dovecot, filter, postfix};

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

/// [`Event::host`] of an ignored or unparsed line: no host is looked up for those.
pub const NO_HOST: u32 = u32::MAX;

/// Which parser reads a program's messages.
#[derive(Debug, Clone)]
enum Program {
    Postfix(Service),
    Dovecot,
    Filter,
    /// A program this crate does not read, by name (at most 40 bytes).
    Other(event::Text),
}

impl Program {
    fn of(program: &[u8]) -> Program {
        // Dovecot's per-session programs (`lmtp(user)<pid><session>`) are long and many:
        // settle them before looking for a Postfix service name, which has no `(`.
        if program.len() > 5 && program[4] == b'(' && dovecot::is_dovecot(program) {
            return Program::Dovecot;
        }
        if let Some(s) = postfix::service(program) {
            Program::Postfix(s)
        } else if dovecot::is_dovecot(program) {
            Program::Dovecot
        } else if filter::is_filter(program) {
            Program::Filter
        } else {
            Program::Other(event::scan::text(&program[..program.len().min(40)]))
        }
    }
}

/// What the header of a line (all before the message) says.
#[derive(Debug, Clone)]
struct Head<'a> {
    /// The header's bytes, ending in `: `.
    bytes: &'a [u8],
    stamp: Stamp,
    host: &'a [u8],
    program: &'a [u8],
    parser: Program,
    /// The host's index in [`Hosts`], once a line of this header needed it.
    host_id: Option<u32>,
    /// [`words`] of the header.
    words: [u64; 2],
}

/// Bytes 8-15 of the header (a classic stamp's time) and its last 8 bytes (`end` is its
/// length), as words. Lines of another second or another process differ there, which
/// two compares settle; the full compare, a call to memcmp, is left for the lines that
/// will most likely match.
#[inline]
fn words(line: &[u8], end: usize) -> [u64; 2] {
    let word = |to: usize| {
        let from = to.saturating_sub(8);
        // Fixed-size reads when there are 8 bytes (every real header), so no memcpy call.
        match line.get(from..to).map(<[u8; 8]>::try_from) {
            Some(Ok(w)) => u64::from_le_bytes(w),
            _ => {
                let mut w = [0u8; 8];
                w[..to - from].copy_from_slice(&line[from..to]);
                u64::from_le_bytes(w)
            }
        }
    };
    [word(end.min(16)), word(end)]
}

/// Classifies the lines of one chunk; see the module's note on the reused header.
#[derive(Debug)]
pub struct LineParser<'a> {
    hosts: Hosts,
    last: Option<Head<'a>>,
}

impl<'a> LineParser<'a> {
    /// A parser whose hostless lines are attributed to `unnamed`.
    pub fn new(unnamed: Option<Arc<str>>) -> Self {
        LineParser {
            hosts: Hosts::new(unnamed),
            last: None,
        }
    }

    /// Classifies one line (without its newline), as [`classify_line`] does.
    pub fn classify(&mut self, line: &'a [u8]) -> Event {
        if let Some(h) = &mut self.last
            && line.len() > h.bytes.len()
            && words(line, h.bytes.len()) == h.words
            && line.starts_with(h.bytes)
        {
            // The header was parsed from these very bytes, and nothing in it depends on
            // what follows its `: `: the result is the same.
            let msg = &line[h.bytes.len()..];
            let kind = message(&h.parser, h.program, msg);
            let host = match kind {
                Kind::Ignored | Kind::Unparsed { .. } => NO_HOST,
                _ => *h.host_id.get_or_insert_with(|| self.hosts.id(h.host)),
            };
            return Event {
                stamp: h.stamp,
                host,
                kind,
            };
        }
        let Some(l) = syslog::parse(line) else {
            return not_syslog();
        };
        let parser = Program::of(l.program);
        let kind = message(&parser, l.program, l.msg);
        // The message runs to the end of the line, so the header is the rest; a line that
        // ends at its tag (`prog[1]:`) is not kept, as a longer line with that start might
        // split differently.
        let head = line.len() - l.msg.len();
        let e = event(l.stamp, l.host, kind, &mut self.hosts);
        self.last = (!l.msg.is_empty() && line[..head].ends_with(b": ")).then(|| Head {
            bytes: &line[..head],
            stamp: l.stamp,
            host: l.host,
            program: l.program,
            parser,
            host_id: (e.host != NO_HOST).then_some(e.host),
            words: words(line, head),
        });
        e
    }

    /// The host names, indexed by [`Event::host`].
    pub fn into_names(self) -> Vec<Arc<str>> {
        self.hosts.into_names()
    }
}

fn not_syslog() -> Event {
    Event {
        stamp: Stamp {
            year: None,
            month: 0,
            day: 0,
            secs: 0,
        },
        host: NO_HOST,
        kind: Kind::Unparsed {
            kind: Unknown::NotSyslog,
        },
    }
}

fn message(parser: &Program, program: &[u8], msg: &[u8]) -> Kind {
    match parser {
        Program::Postfix(s) => postfix::classify(*s, msg),
        Program::Dovecot => dovecot::classify(program, msg),
        Program::Filter => filter::classify(program, msg),
        Program::Other(name) => Kind::Unparsed {
            kind: Unknown::Program(name.clone()),
        },
    }
}

fn event(stamp: Stamp, host: &[u8], kind: Kind, hosts: &mut Hosts) -> Event {
    // Most lines of a verbose log say nothing the report counts: skip their host lookup.
    let host = match kind {
        Kind::Ignored | Kind::Unparsed { .. } => NO_HOST,
        _ => hosts.id(host),
    };
    Event { stamp, host, kind }
}

/// Classifies one line (without its newline); never fails: what is not understood becomes
/// [`Kind::Unparsed`] with the kind of line it is, and its host is [`NO_HOST`].
pub fn classify_line(line: &[u8], hosts: &mut Hosts) -> Event {
    let Some(l) = syslog::parse(line) else {
        return not_syslog();
    };
    let kind = message(&Program::of(l.program), l.program, l.msg);
    event(l.stamp, l.host, kind, hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reused header must give what a fresh parse gives, line after line.
    #[test]
    fn a_repeated_header_classifies_as_a_fresh_one() {
        let text = b"Jan  5 10:00:00 mx postfix/qmgr[7]: ABC: from=<a@b.c>, size=10, nrcpt=1 (queue active)
Jan  5 10:00:00 mx postfix/qmgr[7]: ABC: removed
Jan  5 10:00:00 mx postfix/qmgr[7]:
Jan  5 10:00:00 mx postfix/qmgr[7]:x
Jan  5 10:00:00 mx postfix/qmgr[7]: input attribute name: status
Jan  5 10:00:01 mx postfix/qmgr[7]: ABC: removed
Jan  5 10:00:01 other postfix/qmgr[7]: ABC: removed
Jan  5 10:00:01 other sendmail[9]: x
Jan  5 10:00:01 other sendmail[9]: y
Jan  5 10:00:01 imap-login: Info: Login: user=<a@b.c>, method=PLAIN, rip=1.2.3.4
Jan  5 10:00:01 imap-login: Info: Login: user=<d@b.c>, method=PLAIN, rip=1.2.3.4
garbage
Jan  5 10:00:01 other sendmail[9]: y
Jan 5 10:00:02 mx postfix/qmgr[7]: ABC: removed
Jan 5 10:00:02 mz postfix/smtpd[8]: connect from a[1.2.3.4]
Jan 5 10:00:02 mz
2024-01-05T10:00:02.5+01:00 mx postfix/qmgr[7]: ABC: removed
2024-01-05T10:00:02.5+01:00 my postfix/smtpd[8]: connect from a[1.2.3.4]";
        let mut cached = LineParser::new(Some(Arc::from("store1")));
        let mut fresh = Hosts::new(Some(Arc::from("store1")));
        let mut names = Vec::new();
        for line in text.split(|b| *b == b'\n') {
            let a = cached.classify(line);
            let b = classify_line(line, &mut fresh);
            assert_eq!(
                (a.stamp, &a.kind),
                (b.stamp, &b.kind),
                "{}",
                String::from_utf8_lossy(line)
            );
            names.push(a.host);
        }
        assert_eq!(cached.into_names(), fresh.into_names());
        assert!(names.contains(&NO_HOST));
    }
}

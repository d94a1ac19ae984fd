//! What a log line says, once classified: the unit the parsers hand to the aggregator.

use crate::syslog::Stamp;

/// Short owned text (addresses, queue IDs, names): kept inline up to 24 bytes, so most
/// events allocate nothing.
pub type Text = compact_str::CompactString;

/// A Postfix queue ID, kept inline with no UTF-8 check and no heap: it is in every Postfix
/// event and keys the table of messages in flight. IDs are at most 17 bytes; a longer word
/// (a garbled line) keeps its first 15 bytes and a 64-bit hash of the whole.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Qid {
    len: u8,
    bytes: [u8; 23],
}

impl Qid {
    /// The ID of these bytes.
    pub fn new(b: &[u8]) -> Qid {
        let mut bytes = [0u8; 23];
        if b.len() <= bytes.len() {
            bytes[..b.len()].copy_from_slice(b);
            return Qid {
                len: b.len() as u8,
                bytes,
            };
        }
        use std::hash::{BuildHasher, BuildHasherDefault};
        let h = BuildHasherDefault::<rustc_hash::FxHasher>::default().hash_one(b);
        bytes[..15].copy_from_slice(&b[..15]);
        bytes[15..].copy_from_slice(&h.to_le_bytes());
        Qid {
            len: u8::MAX,
            bytes,
        }
    }

    /// The ID as written (a long one shortened to its first 15 bytes).
    pub fn as_bytes(&self) -> &[u8] {
        let n = if self.len == u8::MAX {
            15
        } else {
            usize::from(self.len)
        };
        &self.bytes[..n]
    }
}

impl From<&str> for Qid {
    fn from(s: &str) -> Qid {
        Qid::new(s.as_bytes())
    }
}

impl std::fmt::Debug for Qid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// What kind of line was not understood.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Unknown {
    /// No syslog timestamp and program.
    NotSyslog,
    /// A date that does not exist (Feb 30).
    ImpossibleDate,
    /// A Postfix service's message of no known form.
    Postfix(&'static str),
    /// A Dovecot message of no known form.
    Dovecot,
    /// A program this parser does not read.
    Program(Text),
}

impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unknown::NotSyslog => f.write_str("not a syslog line"),
            Unknown::ImpossibleDate => f.write_str("impossible date"),
            Unknown::Postfix(s) => write!(f, "postfix/{s}: other"),
            Unknown::Dovecot => f.write_str("dovecot: other"),
            Unknown::Program(p) => write!(f, "program {p}"),
        }
    }
}

/// A delivery's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Delivered (or forwarded).
    Sent,
    /// Tried, will retry.
    Deferred,
    /// Failed for good.
    Bounced,
    /// Anything else (`expired`, `undeliverable`...).
    Other,
}

/// What Postfix did instead of accepting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// 4xx/5xx to the client.
    Reject,
    /// Would reject (`warn_if_reject`).
    RejectWarning,
    /// Accepted into the hold queue.
    Hold,
    /// Accepted and dropped.
    Discard,
    /// A header/body check `WARN`.
    Warning,
    /// A milter rejected (logged by smtpd; pflogsumm does not count these).
    MilterReject,
}

/// A content filter's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Scanned, not spam.
    Clean,
    /// Scanned, spam.
    Spam,
    /// Passed without scanning: whitelisted sender.
    Whitelisted,
    /// Refused without scanning: blacklisted sender.
    Blacklisted,
    /// Not scanned: too large.
    TooLarge,
    /// Not scanned for another reason (the user has no filtering, filter error).
    NotScanned,
}

/// Where in the SMTP dialog (or in cleanup's checks) a rejection happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// CONNECT (postscreen, smtpd_client_restrictions).
    Connect,
    /// HELO/EHLO.
    Helo,
    /// MAIL FROM.
    Mail,
    /// RCPT TO: this recipient only.
    Rcpt,
    /// DATA, before the message.
    Data,
    /// After the whole message (end-of-data restrictions, a milter).
    EndOfMessage,
    /// cleanup's header checks.
    Header,
    /// cleanup's body checks.
    Body,
    /// Anything else (ETRN, VRFY, unknown).
    Other,
}

impl Stage {
    /// The stage named by the first word after the action (`RCPT from ...`).
    pub fn of(rest: &[u8]) -> Stage {
        let word = rest.split(|b| *b == b' ').next().unwrap_or(b"");
        match word {
            b"CONNECT" => Stage::Connect,
            b"HELO" | b"EHLO" => Stage::Helo,
            b"MAIL" => Stage::Mail,
            b"RCPT" => Stage::Rcpt,
            b"DATA" => Stage::Data,
            b"END-OF-MESSAGE" => Stage::EndOfMessage,
            b"header" => Stage::Header,
            b"body" => Stage::Body,
            _ => Stage::Other,
        }
    }

    /// Whether the whole message was refused after it was received (so anything counted
    /// at the end of data must be given back).
    pub fn after_data(self) -> bool {
        matches!(self, Stage::EndOfMessage | Stage::Header | Stage::Body)
    }
}

/// A rejection's details.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    /// The queue ID, if the message had one.
    pub qid: Option<Qid>,
    /// What Postfix did.
    pub action: Action,
    /// Where in the dialog.
    pub stage: Stage,
    /// Which service.
    pub service: &'static str,
    /// The client's address.
    pub ip: Option<Text>,
    /// The envelope sender.
    pub from: Option<Text>,
    /// The recipient.
    pub to: Option<Text>,
    /// The DNSBL the text names.
    pub dnsbl: Option<Text>,
}

/// One classified line.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// smtpd: a client connected.
    Connect { ip: Text },
    /// smtpd: a message was started for a client (pflogsumm's "received"); `client` is
    /// `host[ip]`.
    Client {
        qid: Qid,
        client: Text,
        sasl_user: Option<Text>,
    },
    /// pickup: a message submitted locally (sendmail binary).
    Pickup { qid: Qid, sender: Text },
    /// qmgr: the message entered the active queue.
    QueueFrom {
        qid: Qid,
        sender: Text,
        size: u64,
        nrcpt: u32,
    },
    /// A delivery attempt to one recipient.
    Delivery {
        qid: Qid,
        service: &'static str,
        to: Text,
        status: Status,
        forwarded: bool,
    },
    /// smtpd, postscreen or cleanup refused, held or discarded (boxed: rare and large).
    Reject(Box<Reject>),
    /// qmgr: the message left the queue.
    Removed { qid: Qid },
    /// postscreen: a connection arrived.
    ScreenConnect { ip: Text },
    /// postscreen: a client is on the permanent white- or blacklist.
    ScreenList { ip: Text, white: bool },
    /// postscreen: a client passed the tests and goes on to smtpd.
    ScreenPass { ip: Text },
    /// dnsblog: a DNSBL lists the client.
    DnsblHit { ip: Text, list: Text },
    /// warning/fatal/panic lines, by service.
    Problem {
        service: &'static str,
        level: &'static str,
    },
    /// Dovecot: a successful IMAP or POP3 login.
    Login { proto: Text, user: Text, ip: Text },
    /// Dovecot: a failed login (auth failed, unknown user).
    LoginFailed {
        proto: Text,
        user: Option<Text>,
        ip: Option<Text>,
    },
    /// Dovecot: a session ended, with its traffic.
    Logout {
        proto: Text,
        user: Text,
        bytes_in: u64,
        bytes_out: u64,
    },
    /// Dovecot LMTP: a message stored.
    Stored { user: Text },
    /// A content filter's result.
    Scan {
        engine: Text,
        qid: Option<Text>,
        verdict: Verdict,
        rules: Vec<Text>,
    },
    /// Understood, nothing to count.
    Ignored,
    /// Not understood: counted by kind.
    Unparsed { kind: Unknown },
}

/// A classified line with its time and host.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// When.
    pub stamp: Stamp,
    /// Which host logged it: an index into the chunk's [`crate::Hosts`].
    pub host: u32,
    /// What it says.
    pub kind: Kind,
}

/// Byte helpers shared by the parsers.
pub(crate) mod scan {
    use super::Text;

    /// Lossy text: logs are not guaranteed UTF-8.
    #[allow(unsafe_code)]
    pub(crate) fn text(b: &[u8]) -> Text {
        // Nearly every field is ASCII: `is_ascii` checks it a word at a time, inline, where
        // `from_utf8` is a call that walks short input byte by byte (15-60 ns a line less,
        // measured per line kind).
        if b.is_ascii() {
            // SAFETY: ASCII bytes are valid UTF-8.
            return Text::from(unsafe { std::str::from_utf8_unchecked(b) });
        }
        match std::str::from_utf8(b) {
            Ok(s) => Text::from(s),
            Err(_) => Text::from(String::from_utf8_lossy(b)),
        }
    }

    /// Position of `needle` in `hay`. Needles here are short and start with a rare byte:
    /// a memchr on the first byte beats building a memmem searcher per call.
    pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        let (&first, rest) = needle.split_first()?;
        let mut from = 0;
        while let Some(p) = memchr::memchr(first, &hay[from..]) {
            let at = from + p;
            if hay[at + 1..].starts_with(rest) {
                return Some(at);
            }
            from = at + 1;
        }
        None
    }

    /// The bytes after `key` up to the first byte in `ends` (or the end).
    pub(crate) fn value<'a>(hay: &'a [u8], key: &[u8], ends: &[u8]) -> Option<&'a [u8]> {
        let start = find(hay, key)? + key.len();
        let rest = &hay[start..];
        let end = rest
            .iter()
            .position(|b| ends.contains(b))
            .unwrap_or(rest.len());
        Some(&rest[..end])
    }

    /// The text inside `<...>` right after `key` (`from=<` ... `>`).
    pub(crate) fn angle<'a>(hay: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
        let start = find(hay, key)? + key.len();
        let rest = &hay[start..];
        let end = memchr::memchr(b'>', rest)?;
        Some(&rest[..end])
    }

    /// A leading decimal number.
    pub(crate) fn number(b: &[u8]) -> Option<u64> {
        let end = b
            .iter()
            .position(|c| !c.is_ascii_digit())
            .unwrap_or(b.len());
        if end == 0 || end > 19 {
            return None;
        }
        b[..end].iter().try_fold(0u64, |acc, &c| {
            acc.checked_mul(10)?.checked_add(u64::from(c - b'0'))
        })
    }

    /// Splits `host[ip]` (Postfix's client form) into host and IP.
    pub(crate) fn host_ip(b: &[u8]) -> (&[u8], &[u8]) {
        match memchr::memchr(b'[', b) {
            Some(i) => {
                let rest = &b[i + 1..];
                let end = memchr::memchr(b']', rest).unwrap_or(rest.len());
                (&b[..i], &rest[..end])
            }
            None => (b, b""),
        }
    }

    /// Lower-cases the domain part (after the first `@`), as pflogsumm does.
    pub(crate) fn address(b: &[u8]) -> Text {
        // Most domains are written in lower case already: decide on the bytes, and build
        // the text once.
        let lower = match memchr::memchr(b'@', b) {
            Some(at) => !b[at..].iter().any(u8::is_ascii_uppercase),
            None => true,
        };
        if lower {
            return text(b);
        }
        let mut s = text(b);
        if let Some(at) = s.find('@')
            && s[at..].bytes().any(|c| c.is_ascii_uppercase())
        {
            let dom = s[at..].to_ascii_lowercase();
            s.truncate(at);
            s.push_str(&dom);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::Qid;

    #[test]
    fn queue_ids_inline_and_long_words_stay_distinct() {
        let q = Qid::new(b"4PmXkr1lR6z9tDJ");
        assert_eq!(q.as_bytes(), b"4PmXkr1lR6z9tDJ");
        assert_eq!(q, Qid::from("4PmXkr1lR6z9tDJ"));
        assert_ne!(q, Qid::new(b"4PmXkr1lR6z9tDK"));
        assert_eq!(Qid::new(b"").as_bytes(), b"");
        let a = Qid::new(b"a-garbled-word-longer-than-any-queue-id-1");
        let b = Qid::new(b"a-garbled-word-longer-than-any-queue-id-2");
        assert_ne!(a, b);
        assert_eq!(a, Qid::new(b"a-garbled-word-longer-than-any-queue-id-1"));
        assert_eq!(a.as_bytes(), b"a-garbled-word-");
    }
}

//! Why a mail protocol exchange failed, in a form a caller can act on: whether a retry can
//! help ([`MailError::is_transient`]), whether it never will ([`MailError::is_permanent`]),
//! whether the server simply did not answer in time ([`MailError::is_timeout`]), and the
//! server's own words.

use std::fmt;
use std::time::Duration;

/// A failed exchange: the step it failed in and what happened there.
#[derive(Debug)]
pub struct MailError {
    step: &'static str,
    kind: ErrorKind,
}

/// What went wrong.
#[derive(Debug)]
pub enum ErrorKind {
    /// A network error (reset, refused, broken pipe...).
    Io(std::io::Error),
    /// The server closed the connection.
    Closed,
    /// No answer before the deadline.
    Timeout(Duration),
    /// An SMTP or LMTP reply of an unwanted class.
    Reply {
        /// The reply code.
        code: u16,
        /// Its text, multi-line replies joined.
        text: String,
    },
    /// IMAP `NO`.
    No(String),
    /// IMAP `BAD`.
    Bad(String),
    /// POP3 `-ERR`.
    Err(String),
    /// The TLS handshake failed (an untrusted or misnamed certificate, no common cipher).
    Tls(String),
    /// The server said something this client cannot use (malformed, too long, not offered).
    Protocol(String),
    /// The session is unusable after an earlier timeout or failure.
    Broken(String),
}

impl MailError {
    /// An error in `step`.
    pub fn new(step: &'static str, kind: ErrorKind) -> Self {
        MailError { step, kind }
    }

    /// A protocol error in `step`.
    pub fn protocol(step: &'static str, message: impl Into<String>) -> Self {
        Self::new(step, ErrorKind::Protocol(message.into()))
    }

    /// A network error in `step`; a TLS failure inside it is told apart.
    pub fn io(step: &'static str, e: std::io::Error) -> Self {
        Self::new(step, e.into())
    }

    /// The step it failed in (`connect`, `banner`, `login`, `rcpt`...).
    pub fn step(&self) -> &'static str {
        self.step
    }

    /// What happened.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The SMTP/LMTP reply code, if the server refused with one.
    pub fn code(&self) -> Option<u16> {
        match &self.kind {
            ErrorKind::Reply { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The server's own text, when it answered.
    pub fn server_text(&self) -> Option<&str> {
        match &self.kind {
            ErrorKind::Reply { text, .. }
            | ErrorKind::No(text)
            | ErrorKind::Bad(text)
            | ErrorKind::Err(text) => Some(text),
            _ => None,
        }
    }

    /// No answer before the deadline: the server may be hung; a retry may wait as long again.
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, ErrorKind::Timeout(_))
    }

    /// A retry later may succeed: a 4xx reply, an IMAP `NO` that names a passing condition
    /// (RFC 5530 `UNAVAILABLE`, `INUSE`, `LIMIT`, `SERVERBUG`), POP3 `[IN-USE]` or `[SYS/TEMP]`
    /// (RFC 3206), a reset or refused connection, a server that hung up.
    pub fn is_transient(&self) -> bool {
        match &self.kind {
            ErrorKind::Reply { code, .. } => (400..500).contains(code),
            ErrorKind::No(text) => imap_no_is_transient(text),
            ErrorKind::Err(text) => {
                let t = text.to_ascii_uppercase();
                t.contains("[IN-USE]") || t.contains("[SYS/TEMP]")
            }
            ErrorKind::Io(e) => matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::NotConnected
                    | std::io::ErrorKind::Interrupted
            ),
            ErrorKind::Closed => true,
            _ => false,
        }
    }

    /// A retry will fail the same way: a 5xx reply, an IMAP `NO` or `BAD` that is not
    /// passing, POP3 `-ERR` (but for the RFC 3206 temporary codes), a certificate that does
    /// not verify, a protocol the server does not speak as asked.
    pub fn is_permanent(&self) -> bool {
        match &self.kind {
            ErrorKind::Reply { code, .. } => (500..600).contains(code),
            ErrorKind::No(_) | ErrorKind::Err(_) => !self.is_transient(),
            ErrorKind::Bad(_) | ErrorKind::Tls(_) | ErrorKind::Protocol(_) => true,
            _ => false,
        }
    }
}

impl From<std::io::Error> for ErrorKind {
    fn from(e: std::io::Error) -> Self {
        let tls = e
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
        if tls {
            return ErrorKind::Tls(e.to_string());
        }
        match e.kind() {
            std::io::ErrorKind::UnexpectedEof => ErrorKind::Closed,
            _ => ErrorKind::Io(e),
        }
    }
}

/// IMAP `NO` response codes of conditions that pass (RFC 5530).
const TRANSIENT_CODES: [&str; 4] = ["[UNAVAILABLE]", "[INUSE]", "[LIMIT]", "[SERVERBUG]"];

fn imap_no_is_transient(text: &str) -> bool {
    let t = text.to_ascii_uppercase();
    TRANSIENT_CODES.iter().any(|c| t.contains(c)) || t.contains("TRY AGAIN")
}

impl fmt::Display for MailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step, self.kind)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Io(e) => write!(f, "{e}"),
            ErrorKind::Closed => f.write_str("connection closed by the server"),
            ErrorKind::Timeout(d) => write!(f, "no answer within {:.1} s", d.as_secs_f64()),
            ErrorKind::Reply { code, text } => write!(f, "{code} {text}"),
            ErrorKind::No(t) => write!(f, "NO {t}"),
            ErrorKind::Bad(t) => write!(f, "BAD {t}"),
            ErrorKind::Err(t) => write!(f, "-ERR {t}"),
            ErrorKind::Tls(m) => write!(f, "TLS: {m}"),
            ErrorKind::Protocol(m) | ErrorKind::Broken(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for MailError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: u16) -> MailError {
        MailError::new(
            "rcpt",
            ErrorKind::Reply {
                code,
                text: "x".into(),
            },
        )
    }

    #[test]
    fn smtp_classes_decide_retries() {
        assert!(reply(451).is_transient() && !reply(451).is_permanent());
        assert!(reply(554).is_permanent() && !reply(554).is_transient());
        assert_eq!(reply(250).code(), Some(250));
        assert_eq!(reply(550).to_string(), "rcpt: 550 x");
    }

    #[test]
    fn imap_no_codes_and_pop3_codes() {
        let no = |t: &str| MailError::new("select", ErrorKind::No(t.into()));
        assert!(no("[UNAVAILABLE] Temporary authentication failure.").is_transient());
        assert!(no("[INUSE] Mailbox is locked").is_transient());
        assert!(no("[AUTHENTICATIONFAILED] Authentication failed.").is_permanent());
        assert!(no("Mailbox doesn't exist: Nope").is_permanent());
        let err = |t: &str| MailError::new("login", ErrorKind::Err(t.into()));
        assert!(err("[IN-USE] Mailbox locked").is_transient());
        assert!(err("[AUTH] Authentication failed.").is_permanent());
        let bad = MailError::new("fetch", ErrorKind::Bad("Error in IMAP command".into()));
        assert!(bad.is_permanent() && !bad.is_transient());
        assert_eq!(bad.server_text(), Some("Error in IMAP command"));
    }

    #[test]
    fn network_failures_and_timeouts() {
        let reset = MailError::io(
            "data",
            std::io::Error::from(std::io::ErrorKind::ConnectionReset),
        );
        assert!(reset.is_transient() && !reset.is_permanent() && !reset.is_timeout());
        let eof = MailError::io(
            "banner",
            std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
        );
        assert!(matches!(eof.kind(), ErrorKind::Closed) && eof.is_transient());
        let t = MailError::new("select", ErrorKind::Timeout(Duration::from_secs(3)));
        assert!(t.is_timeout() && !t.is_transient() && !t.is_permanent());
        assert_eq!(t.to_string(), "select: no answer within 3.0 s");
        let tls = MailError::io(
            "tls",
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::General("bad cert".into()),
            ),
        );
        assert!(matches!(tls.kind(), ErrorKind::Tls(_)) && tls.is_permanent());
    }
}

//! Postfix's policy delegation protocol (SMTPD_POLICY_README): the client sends `name=value`
//! lines ending with an empty line; the server answers one `action=...` line and an empty
//! line; many requests follow on one connection. Unknown attributes are kept but ignored by
//! the engine. Anything else (an over-long line, a line without `=`, binary junk, a request
//! without `request=`) is an error: the server closes that connection without an answer.

/// Longest line accepted, newline included (Postfix's own attributes are far shorter; a TLS
/// certificate subject is the longest one it sends).
pub const MAX_LINE: usize = 4096;
/// Most attributes in one request (Postfix 3.7 sends about 30).
pub const MAX_ATTRIBUTES: usize = 128;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A line longer than [`MAX_LINE`].
    #[error("line longer than {MAX_LINE} bytes")]
    LineTooLong,
    /// A line without `=`.
    #[error("line without '=': {0:?}")]
    NoEquals(String),
    /// A name with characters Postfix never sends.
    #[error("bad attribute name {0:?}")]
    BadName(String),
    /// A control character (NUL, CR, ...) in a value.
    #[error("control character in the value of {0}")]
    ControlCharacter(String),
    /// More than [`MAX_ATTRIBUTES`] attributes.
    #[error("more than {MAX_ATTRIBUTES} attributes")]
    TooManyAttributes,
    /// The request has no `request=` attribute.
    #[error("request without request=")]
    NoRequestType,
    /// `request=` is not `smtpd_access_policy`.
    #[error("unknown request type {0:?}")]
    UnknownRequestType(String),
}

/// One request: its attributes in the order sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// `(name, value)` pairs; a name sent twice keeps its last value in [`Request::get`].
    pub attributes: Vec<(String, String)>,
}

impl Request {
    /// The value of an attribute, if sent and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// `protocol_state`: `RCPT`, `END-OF-MESSAGE`, ...
    pub fn state(&self) -> &str {
        self.get("protocol_state").unwrap_or("")
    }

    /// A numeric attribute (`size`, `recipient_count`), 0 when absent or not a number.
    pub fn number(&self, name: &str) -> u64 {
        self.get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
    }
}

/// Builds requests from lines (each given without its line end).
#[derive(Debug, Default)]
pub struct RequestBuilder {
    current: Request,
}

impl RequestBuilder {
    /// Whether no line of a request has been taken since the last one ended.
    pub fn is_empty(&self) -> bool {
        self.current.attributes.is_empty()
    }

    /// Takes one line; returns the request when the line is the empty one that ends it.
    pub fn line(&mut self, line: &[u8]) -> Result<Option<Request>, PolicyError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() >= MAX_LINE {
            return Err(PolicyError::LineTooLong);
        }
        if line.is_empty() {
            let request = std::mem::take(&mut self.current);
            return match request.get("request") {
                Some("smtpd_access_policy") => Ok(Some(request)),
                Some(other) => Err(PolicyError::UnknownRequestType(other.to_string())),
                None => Err(PolicyError::NoRequestType),
            };
        }
        let text = String::from_utf8_lossy(line);
        let Some((name, value)) = text.split_once('=') else {
            return Err(PolicyError::NoEquals(truncated(&text)));
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(PolicyError::BadName(truncated(name)));
        }
        if value.chars().any(char::is_control) {
            return Err(PolicyError::ControlCharacter(name.to_string()));
        }
        if self.current.attributes.len() >= MAX_ATTRIBUTES {
            return Err(PolicyError::TooManyAttributes);
        }
        self.current
            .attributes
            .push((name.to_string(), value.to_string()));
        Ok(None)
    }
}

fn truncated(s: &str) -> String {
    s.chars().take(60).collect()
}

/// What the server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// No opinion: the next restriction decides (`DUNNO`).
    Dunno,
    /// Put the message on the hold queue (`HOLD text`).
    Hold(String),
    /// Accept now but answer 4xx if the rest would accept (`DEFER_IF_PERMIT text`).
    DeferIfPermit(String),
    /// 4xx now (`DEFER text`).
    Defer(String),
    /// 5xx (`REJECT text`).
    Reject(String),
}

/// Why a reply from a policy server could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// A line that is not `name=value`.
    #[error("not an attribute line: {0:?}")]
    NotAttribute(String),
    /// No `action=` before the empty line.
    #[error("a reply without action=")]
    NoAction,
}

impl Action {
    /// The action of a reply's `action=` value (`HOLD over quota`); an unknown verb (a
    /// peer's `PREPEND`, `OK`) is kept as `Dunno` with nothing lost but its text.
    pub fn parse(value: &str) -> Action {
        let (verb, text) = value.split_once(' ').unwrap_or((value, ""));
        let text = text.trim().to_string();
        match verb.to_ascii_uppercase().as_str() {
            "HOLD" => Action::Hold(text),
            "DEFER_IF_PERMIT" => Action::DeferIfPermit(text),
            "DEFER" => Action::Defer(text),
            "REJECT" => Action::Reject(text),
            _ => Action::Dunno,
        }
    }

    /// The reply verb (`DUNNO`, `HOLD`...).
    pub fn verb(&self) -> &'static str {
        match self {
            Action::Dunno => "DUNNO",
            Action::Hold(_) => "HOLD",
            Action::DeferIfPermit(_) => "DEFER_IF_PERMIT",
            Action::Defer(_) => "DEFER",
            Action::Reject(_) => "REJECT",
        }
    }

    /// The reply bytes: one `action=` line and the empty line.
    pub fn encode(&self) -> String {
        let (verb, text) = match self {
            Action::Dunno => ("DUNNO", ""),
            Action::Hold(t) => ("HOLD", t.as_str()),
            Action::DeferIfPermit(t) => ("DEFER_IF_PERMIT", t.as_str()),
            Action::Defer(t) => ("DEFER", t.as_str()),
            Action::Reject(t) => ("REJECT", t.as_str()),
        };
        // A line end inside the text would end the reply early.
        let text: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if text.is_empty() {
            format!("action={verb}\n\n")
        } else {
            format!("action={verb} {text}\n\n")
        }
    }
}

/// A request as a client sends it: `name=value` lines and the empty line. Values are cut at
/// a line end, so one attribute cannot inject another.
pub fn encode_request(attributes: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(64 + attributes.len() * 32);
    for (name, value) in attributes {
        let value = value.split(['\n', '\r']).next().unwrap_or("");
        out.push_str(name);
        out.push('=');
        out.push_str(value);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// Reads a reply line by line (each without its line end): `Ok(Some)` at the empty line that
/// ends it.
#[derive(Debug, Default)]
pub struct ReplyReader {
    action: Option<Action>,
}

impl ReplyReader {
    /// Takes one line of the reply.
    pub fn line(&mut self, line: &str) -> Result<Option<Action>, ReplyError> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            return self.action.take().map(Some).ok_or(ReplyError::NoAction);
        }
        let (name, value) = line
            .split_once('=')
            .ok_or_else(|| ReplyError::NotAttribute(line.chars().take(80).collect()))?;
        if name == "action" {
            self.action = Some(Action::parse(value));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(b: &mut RequestBuilder, text: &str) -> Result<Vec<Request>, PolicyError> {
        let mut out = Vec::new();
        for line in text.split('\n') {
            if let Some(r) = b.line(line.as_bytes())? {
                out.push(r);
            }
        }
        Ok(out)
    }

    #[test]
    fn requests_are_split_at_empty_lines() {
        let mut b = RequestBuilder::default();
        let got = feed(
            &mut b,
            "request=smtpd_access_policy\nprotocol_state=END-OF-MESSAGE\nsasl_username=a@example.com\nsize=1234\nrecipient_count=10\nfuture_attribute=x\n\nrequest=smtpd_access_policy\nprotocol_state=RCPT\r\nsender=",
        )
        .unwrap();
        assert_eq!(got.len(), 1);
        let r = &got[0];
        assert_eq!(r.state(), "END-OF-MESSAGE");
        assert_eq!(r.get("sasl_username"), Some("a@example.com"));
        assert_eq!(r.number("recipient_count"), 10);
        assert_eq!(r.number("missing"), 0);
        let second = b.line(b"").unwrap().unwrap();
        assert_eq!(second.state(), "RCPT");
        assert_eq!(second.get("sender"), None, "empty means absent");
    }

    #[test]
    fn malformed_lines_are_refused() {
        let cases: [(&[u8], PolicyError); 5] = [
            (
                b"no equals here",
                PolicyError::NoEquals("no equals here".into()),
            ),
            (b"=value", PolicyError::BadName(String::new())),
            (b"Bad Name=x", PolicyError::BadName("Bad Name".into())),
            (
                b"sender=a\x00b",
                PolicyError::ControlCharacter("sender".into()),
            ),
            (&[b'x'; MAX_LINE], PolicyError::LineTooLong),
        ];
        for (line, want) in cases {
            assert_eq!(RequestBuilder::default().line(line), Err(want));
        }
        let mut b = RequestBuilder::default();
        assert_eq!(b.line(b""), Err(PolicyError::NoRequestType));
        b.line(b"request=other").unwrap();
        assert_eq!(
            b.line(b""),
            Err(PolicyError::UnknownRequestType("other".into()))
        );
        let mut b = RequestBuilder::default();
        for i in 0..MAX_ATTRIBUTES {
            b.line(format!("a{i}=1").as_bytes()).unwrap();
        }
        assert_eq!(b.line(b"one=more"), Err(PolicyError::TooManyAttributes));
    }

    #[test]
    fn a_client_encodes_requests_and_reads_replies() {
        assert_eq!(
            encode_request(&[
                ("request", "smtpd_access_policy"),
                ("sender", "a@b\nrecipient=x")
            ]),
            "request=smtpd_access_policy\nsender=a@b\n\n"
        );
        let mut r = ReplyReader::default();
        assert_eq!(r.line("action=HOLD over quota"), Ok(None));
        assert_eq!(r.line(""), Ok(Some(Action::Hold("over quota".into()))));
        assert_eq!(r.line(""), Err(ReplyError::NoAction));
        assert_eq!(
            r.line("garbage"),
            Err(ReplyError::NotAttribute("garbage".into()))
        );
        for a in [
            Action::Dunno,
            Action::Reject("no".into()),
            Action::DeferIfPermit("later".into()),
        ] {
            let mut r = ReplyReader::default();
            let mut got = None;
            for l in a.encode().split('\n').take(2) {
                got = r.line(l).unwrap().or(got);
            }
            assert_eq!(got, Some(a.clone()), "{a:?} round-trips");
        }
        assert_eq!(Action::parse("PREPEND X-Y: z"), Action::Dunno);
    }

    #[test]
    fn replies_are_one_line_and_an_empty_one() {
        assert_eq!(Action::Dunno.encode(), "action=DUNNO\n\n");
        assert_eq!(
            Action::Hold("over quota\nsneaky".into()).encode(),
            "action=HOLD over quota sneaky\n\n"
        );
        assert_eq!(
            Action::Reject("5.7.1 blocked".into()).encode(),
            "action=REJECT 5.7.1 blocked\n\n"
        );
    }
}

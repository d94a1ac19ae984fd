//! SMTP/LMTP replies (RFC 5321 section 4.2) and EHLO keywords: parsing only, no I/O.

/// Most lines one reply may have (a server sending more is refused).
pub const MAX_REPLY_LINES: usize = 100;

/// One line of a reply: its code, whether more lines follow, and its text.
pub fn parse_line(line: &str) -> Result<(u16, bool, &str), String> {
    let code = line
        .get(..3)
        .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|c| (200..600).contains(c))
        .ok_or_else(|| format!("not a reply: {line:?}"))?;
    let more = match line.as_bytes().get(3) {
        None | Some(b' ') => false,
        Some(b'-') => true,
        Some(_) => return Err(format!("not a reply: {line:?}")),
    };
    Ok((code, more, line.get(4..).unwrap_or("")))
}

/// A whole reply: its code and each line's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The code (the last line's; RFC 5321 wants them all equal).
    pub code: u16,
    /// The text of each line.
    pub lines: Vec<String>,
}

impl Reply {
    /// The lines' text joined by spaces.
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }
}

/// Whether the EHLO/LHLO reply lists this extension keyword.
pub fn offers(ehlo: &[String], keyword: &str) -> bool {
    ehlo.iter().any(|l| {
        l.split_whitespace()
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case(keyword))
    })
}

/// The SASL mechanisms of the EHLO reply's AUTH line, upper-cased.
pub fn auth_mechanisms(ehlo: &[String]) -> Vec<String> {
    ehlo.iter()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.next()
                .filter(|k| k.eq_ignore_ascii_case("AUTH"))
                .map(|_| w.map(str::to_ascii_uppercase).collect::<Vec<_>>())
        })
        .flatten()
        .collect()
}

/// The message as DATA sends it: CRLF line ends (a bare LF becomes CRLF), a leading dot
/// doubled (RFC 5321 section 4.5.2), ending with the `.` line.
pub fn dot_stuffed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 50 + 8);
    let mut at_line_start = true;
    let mut prev = 0u8;
    for &b in message {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        at_line_start = b == b'\n';
        prev = b;
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines() {
        assert_eq!(parse_line("250-mx1.test"), Ok((250, true, "mx1.test")));
        assert_eq!(parse_line("250 OK"), Ok((250, false, "OK")));
        assert_eq!(parse_line("354"), Ok((354, false, "")));
        for bad in [
            "",
            "25",
            "abc hello",
            "250xOK",
            "999 no",
            "099 x",
            "+OK pop3",
        ] {
            assert!(parse_line(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ehlo_keywords() {
        let ehlo: Vec<String> = ["mx1.test", "PIPELINING", "STARTTLS", "auth plain LOGIN"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(offers(&ehlo, "starttls") && !offers(&ehlo, "SMTPUTF8"));
        assert_eq!(auth_mechanisms(&ehlo), ["PLAIN", "LOGIN"]);
        assert!(auth_mechanisms(&[]).is_empty());
    }

    #[test]
    fn data_is_dot_stuffed_with_crlf() {
        assert_eq!(dot_stuffed(b"a\r\n.b\r\n"), b"a\r\n..b\r\n.\r\n");
        assert_eq!(dot_stuffed(b".x\nb\n..y"), b"..x\r\nb\r\n...y\r\n.\r\n");
        assert_eq!(dot_stuffed(b""), b".\r\n");
        assert_eq!(dot_stuffed(b"no end"), b"no end\r\n.\r\n");
    }
}

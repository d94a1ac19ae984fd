//! Splitting a log line into timestamp, host, program, PID and message. Pure and
//! allocation-free: it runs on every line, on every core.
//!
//! Accepted forms: the classic syslog `Mmm dd HH:MM:SS host prog[pid]: msg` (Postfix's
//! `maillog_file` writes it too), RFC 3339 `2024-05-01T10:00:00.123+02:00 host prog[pid]: msg`,
//! and Dovecot's own `log_path` file form `Mmm dd HH:MM:SS prog: Level: msg` (no host).

/// A timestamp as the line gives it. Classic syslog has no year: the aggregator, which sees
/// lines in order, supplies it (the report's `aggregate::Clock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The year, when the line has one (RFC 3339 years have four digits; 16 bits keep the
    /// event, which every counted line becomes, 8 bytes smaller).
    pub year: Option<i16>,
    /// 1-12.
    pub month: u8,
    /// 1-31.
    pub day: u8,
    /// Seconds since midnight.
    pub secs: u32,
}

/// A line split into its parts; the parts borrow from the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// When.
    pub stamp: Stamp,
    /// The host that logged it (empty for Dovecot's file form).
    pub host: &'a [u8],
    /// The program (`postfix/smtpd`, `dovecot`, `imap-login`...).
    pub program: &'a [u8],
    /// The message after `program[pid]: `.
    pub msg: &'a [u8],
}

/// The month of a three-letter English abbreviation (a byte match: no string compares).
fn month(b: &[u8]) -> Option<u8> {
    Some(match b.get(..3)? {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    })
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 9 {
        return None;
    }
    b.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

/// `HH:MM:SS` to seconds since midnight (byte arithmetic: this runs on every line).
fn hms(b: &[u8]) -> Option<u32> {
    let &[h1, h2, b':', m1, m2, b':', s1, s2] = b else {
        return None;
    };
    let d = |c: u8| {
        let v = c.wrapping_sub(b'0');
        (v < 10).then_some(u32::from(v))
    };
    let (h, m, s) = (
        d(h1)? * 10 + d(h2)?,
        d(m1)? * 10 + d(m2)?,
        d(s1)? * 10 + d(s2)?,
    );
    (h < 24 && m < 60 && s < 61).then_some(h * 3600 + m * 60 + s)
}

/// Classic `Mmm dd HH:MM:SS ` (day space-padded or not); returns the stamp and the rest.
fn classic(line: &[u8]) -> Option<(Stamp, &[u8])> {
    let month = month(line)?;
    let rest = line.get(3..)?.strip_prefix(b" ")?;
    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
    // The day has one or two digits: no search needed.
    let sp = match rest.get(..3)? {
        [_, b' ', _] => 1,
        [_, _, b' '] => 2,
        _ => return None,
    };
    let day = digits(&rest[..sp])?;
    let rest = &rest[sp + 1..];
    let secs = hms(rest.get(..8)?)?;
    let rest = rest.get(8..)?.strip_prefix(b" ")?;
    ((1..=31).contains(&day)).then_some((
        Stamp {
            year: None,
            month,
            day: day as u8,
            secs,
        },
        rest,
    ))
}

/// RFC 3339 `YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm) `; the local time is kept as written.
fn rfc3339(line: &[u8]) -> Option<(Stamp, &[u8])> {
    if line.len() < 20 || line[4] != b'-' || line[7] != b'-' || line[10] != b'T' {
        return None;
    }
    let year = digits(&line[0..4])? as i16;
    let month = digits(&line[5..7])?;
    let day = digits(&line[8..10])?;
    let secs = hms(&line[11..19])?;
    let sp = memchr::memchr(b' ', line)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let stamp = Stamp {
        year: Some(year),
        month: month as u8,
        day: day as u8,
        secs,
    };
    Some((stamp, &line[sp + 1..]))
}

/// Splits `host program[pid]: msg`, or Dovecot's hostless `program: msg`. Byte loops
/// rather than searches: host and tag are a few dozen bytes, shorter than a search's setup.
fn tail(rest: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    // Host names are short: a loop over the first bytes; Dovecot's hostless first word
    // (`lmtp(user)<pid><session>:`) is long: memchr for the rest.
    let sp = match rest.iter().take(24).position(|&b| b == b' ') {
        Some(i) => i,
        None => 24 + memchr::memchr(b' ', rest.get(24..)?)?,
    };
    let first = &rest[..sp];
    if first.ends_with(b":") {
        // `imap-login: Info: ...`: Dovecot's own log file, no host.
        return Some((&[], &first[..first.len() - 1], &rest[sp + 1..]));
    }
    let after = &rest[sp + 1..];
    // The program runs to `[pid]` or to the `:` that ends the tag; a space first means
    // this is not a tag.
    let mut end = 0;
    while end < after.len() {
        match after[end] {
            b'[' => break,
            b':' if matches!(after.get(end + 1), None | Some(b' ')) => break,
            b' ' => return None,
            _ => end += 1,
        }
    }
    let program = &after[..end];
    if program.is_empty() || end == after.len() {
        return None;
    }
    let colon = if after[end] == b'[' {
        let digits = after[end + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let close = end + 1 + digits;
        if after[close..].starts_with(b"]: ") || &after[close..] == b"]:" {
            close + 1
        } else {
            // An odd tag (`prog[x y]: msg`): fall back to the first `: `.
            crate::event::scan::find(&after[end..], b": ")
                .map(|c| end + c)
                .or_else(|| after.ends_with(b":").then(|| after.len() - 1))?
        }
    } else {
        end
    };
    let msg = after.get(colon + 2..).unwrap_or(&[]);
    Some((first, program, msg))
}

/// Splits a line; `None` if it is not a syslog line of a form listed above.
pub fn parse(line: &[u8]) -> Option<Line<'_>> {
    let (stamp, rest) = classic(line).or_else(|| rfc3339(line))?;
    let (host, program, msg) = tail(rest)?;
    Some(Line {
        stamp,
        host,
        program,
        msg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_line() {
        let l = parse(b"Aug  1 12:37:51 mx1 postfix/qmgr[30533]: C912F3E2919: removed").unwrap();
        assert_eq!(
            l.stamp,
            Stamp {
                year: None,
                month: 8,
                day: 1,
                secs: 12 * 3600 + 37 * 60 + 51
            }
        );
        assert_eq!(l.host, b"mx1");
        assert_eq!(l.program, b"postfix/qmgr");
        assert_eq!(l.msg, b"C912F3E2919: removed");
    }

    #[test]
    fn rfc3339_line() {
        let l = parse(b"2024-02-29T23:59:59.123456+01:00 mx postfix/submission/smtpd[9]: connect from x[1.2.3.4]").unwrap();
        assert_eq!(l.stamp.year, Some(2024));
        assert_eq!(l.stamp.month, 2);
        assert_eq!(l.program, b"postfix/submission/smtpd");
    }

    #[test]
    fn dovecot_file_line() {
        let l =
            parse(b"Nov 23 10:10:56 imap-login: Info: Login: user=<a@b.c>, method=PLAIN").unwrap();
        assert_eq!(l.host, b"");
        assert_eq!(l.program, b"imap-login");
        assert_eq!(l.msg, b"Info: Login: user=<a@b.c>, method=PLAIN");
    }

    #[test]
    fn junk_is_refused() {
        for junk in [
            &b""[..],
            b"\x00\xff\x01",
            b"Aug 32 12:00:00 h p: m",
            b"Aug  1 25:00:00 h p: m",
            b"Aug  1 12:00",
            b"Foo  1 12:00:00 h p: m",
            b"2024-13-01T00:00:00Z h p: m",
        ] {
            assert!(parse(junk).is_none(), "{junk:?}");
        }
    }
}

//! Classifying Dovecot log messages, from syslog (`dovecot: imap-login: Login: ...`) or from
//! Dovecot's own log file (`imap-login: Info: Login: ...`).

use crate::event::scan::{angle, find, number, text, value};
use crate::event::{Kind, Text, Unknown};

/// Whether a syslog program is Dovecot's.
pub fn is_dovecot(program: &[u8]) -> bool {
    program == b"dovecot"
        || program.starts_with(b"imap")
        || program.starts_with(b"pop3")
        || program.starts_with(b"lmtp")
        || program.starts_with(b"auth")
        || program.starts_with(b"managesieve")
        || program.starts_with(b"submission")
        || program.starts_with(b"doveadm")
        || program.starts_with(b"indexer")
}

fn strip_level(msg: &[u8]) -> &[u8] {
    for level in [
        &b"Info: "[..],
        b"Warning: ",
        b"Error: ",
        b"Fatal: ",
        b"Panic: ",
        b"Debug: ",
    ] {
        if let Some(rest) = msg.strip_prefix(level) {
            return rest;
        }
    }
    msg
}

/// `imap(alice@x)<12><sess>` to (`imap`, Some(`alice@x`)).
fn process(p: &[u8]) -> (&[u8], Option<&[u8]>) {
    match memchr::memchr(b'(', p) {
        Some(i) => {
            let rest = &p[i + 1..];
            let end = memchr::memchr(b')', rest).unwrap_or(rest.len());
            (&p[..i], Some(&rest[..end]))
        }
        None => (p, None),
    }
}

fn proto(base: &[u8]) -> Text {
    let name = base.strip_suffix(b"-login").unwrap_or(base);
    text(name)
}

/// `auth failed` in a login process's line, found by its rarer `f`: most of these lines
/// are disconnects whose text is full of `a`s.
fn auth_failed(rest: &[u8]) -> bool {
    let mut from = 0;
    while let Some(i) = find(&rest[from..], b"failed") {
        if rest[..from + i].ends_with(b"auth ") {
            return true;
        }
        from += i + 1;
    }
    false
}

/// LMTP's `msgid=<...>: saved mail to ...`; a session's connect and disconnect lines are
/// settled without a search.
fn saved(rest: &[u8]) -> bool {
    if let Some(m) = rest.strip_prefix(b"msgid=<")
        && let Some(close) = memchr::memchr(b'>', m)
        && m[close..].starts_with(b">: saved mail to ")
    {
        return true;
    }
    if rest.starts_with(b"Connect from ") || rest.starts_with(b"Disconnect from ") {
        return false;
    }
    find(rest, b"saved mail to ").is_some()
}

/// Classifies one Dovecot line, given its syslog program and message.
pub fn classify(program: &[u8], msg: &[u8]) -> Kind {
    let (proc_tag, rest) = if program == b"dovecot" {
        match find(msg, b": ") {
            Some(i) => (&msg[..i], &msg[i + 2..]),
            None => {
                return Kind::Unparsed {
                    kind: Unknown::Dovecot,
                };
            }
        }
    } else {
        (program, msg)
    };
    let rest = strip_level(rest);
    let (base, user) = process(proc_tag);
    if base.ends_with(b"-login") {
        let ip = || value(rest, b"rip=", b", ").map(text);
        if rest.starts_with(b"Login: ") {
            if let (Some(user), Some(ip)) = (angle(rest, b"user=<"), ip()) {
                return Kind::Login {
                    proto: proto(base),
                    user: text(user),
                    ip,
                };
            }
        } else if auth_failed(rest) {
            return Kind::LoginFailed {
                proto: proto(base),
                user: angle(rest, b"user=<").map(text),
                ip: ip(),
            };
        }
        return Kind::Ignored;
    }
    match (base, user) {
        (b"imap" | b"pop3", Some(user)) => {
            if find(rest, b"Disconnected").is_some() || find(rest, b"Connection closed").is_some() {
                let bytes_in = value(rest, b"in=", b" ,").and_then(number).unwrap_or(0);
                let bytes_out = value(rest, b" out=", b" ,")
                    .and_then(number)
                    .or_else(|| {
                        value(rest, b"retr=", b" ,")
                            .and_then(|v| value(v, b"/", b" ,"))
                            .and_then(number)
                    })
                    .unwrap_or(0);
                return Kind::Logout {
                    proto: text(base),
                    user: text(user),
                    bytes_in,
                    bytes_out,
                };
            }
            Kind::Ignored
        }
        (b"lmtp", Some(user)) if saved(rest) => Kind::Stored { user: text(user) },
        (
            b"lmtp" | b"auth" | b"auth-worker" | b"master" | b"log" | b"config" | b"anvil"
            | b"stats" | b"imap" | b"pop3" | b"indexer" | b"indexer-worker" | b"doveadm",
            _,
        ) => Kind::Ignored,
        _ => Kind::Unparsed {
            kind: Unknown::Dovecot,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_from_syslog_and_file() {
        let k = classify(b"dovecot", b"imap-login: Login: user=<alice@example.com>, method=PLAIN, rip=10.1.2.3, lip=10.0.0.1, mpid=42, session=<x>");
        assert_eq!(
            k,
            Kind::Login {
                proto: "imap".into(),
                user: "alice@example.com".into(),
                ip: "10.1.2.3".into()
            }
        );
        let k = classify(b"pop3-login", b"Info: Disconnected (auth failed, 1 attempts in 2 secs): user=<bob@x.org>, method=PLAIN, rip=1.1.1.1, lip=2.2.2.2, session=<y>");
        assert_eq!(
            k,
            Kind::LoginFailed {
                proto: "pop3".into(),
                user: Some("bob@x.org".into()),
                ip: Some("1.1.1.1".into())
            }
        );
    }

    #[test]
    fn sessions_and_delivery() {
        let k = classify(
            b"imap(alice@example.com)<123><abc>",
            b"Info: Disconnected: Logged out in=120 out=4567 deleted=0",
        );
        assert_eq!(
            k,
            Kind::Logout {
                proto: "imap".into(),
                user: "alice@example.com".into(),
                bytes_in: 120,
                bytes_out: 4567
            }
        );
        let k = classify(b"dovecot", b"pop3(bob@x.org)<9><s>: Disconnected: Logged out top=0/0, retr=2/1500, del=0/2, size=1500");
        assert!(
            matches!(
                k,
                Kind::Logout {
                    bytes_out: 1500,
                    ..
                }
            ),
            "{k:?}"
        );
        let k = classify(
            b"lmtp(carol@example.org)<5><s>",
            b"Info: msgid=<m@x>: saved mail to INBOX",
        );
        assert_eq!(
            k,
            Kind::Stored {
                user: "carol@example.org".into()
            }
        );
    }
}

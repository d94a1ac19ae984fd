//! Classifying Postfix log messages. The rules for what counts as received, delivered,
//! rejected... follow pflogsumm's, so the totals agree where both count the same thing.

use crate::event::scan::{address, angle, find, host_ip, number, text, value};
use crate::event::{Action, Kind, Qid, Reject, Stage, Status, Text, Unknown};

mod service;
mod words;

pub use service::{Role, Service, service};
use words::{Fields, split_word, starts_with_any};

/// `to=<a>, [orig_to=<b>, ]relay=r, [conn_use=n, ]delay=d, [delays=..., ][dsn=..., ]status=s rest`
fn delivery(qid: &[u8], service: &'static str, msg: &[u8]) -> Option<Kind> {
    // Postfix starts every delivery record with the recipient.
    let rest = msg.strip_prefix(b"to=<")?;
    let end = memchr::memchr(b'>', rest)?;
    let to = &rest[..end];
    let mut f = Fields(rest[end + 1..].strip_prefix(b", ")?);
    if f.0.starts_with(b"orig_to=<") {
        let close = memchr::memchr(b'>', f.0)?;
        f.0 = f.0[close + 1..].strip_prefix(b", ")?;
    }
    f.take(b"relay=")?;
    f.skip(b"conn_use=");
    f.take(b"delay=")?;
    f.skip(b"delays=");
    f.skip(b"dsn=");
    let rest = f.0.strip_prefix(b"status=")?;
    let end = rest
        .iter()
        .position(u8::is_ascii_whitespace)
        .unwrap_or(rest.len());
    let status = match &rest[..end] {
        b"sent" => Status::Sent,
        b"deferred" => Status::Deferred,
        b"bounced" => Status::Bounced,
        _ => Status::Other,
    };
    Some(Kind::Delivery {
        qid: Qid::new(qid),
        service,
        to: address(to),
        status,
        forwarded: find(&rest[end..], b"forwarded as ").is_some(),
    })
}

fn action(word: &[u8]) -> Option<Action> {
    Some(match word {
        b"reject" => Action::Reject,
        b"reject_warning" => Action::RejectWarning,
        b"hold" => Action::Hold,
        b"discard" => Action::Discard,
        b"milter-reject" => Action::MilterReject,
        _ => return None,
    })
}

/// The DNSBL named in a reject text (`blocked using zen.spamhaus.org;`).
fn dnsbl(msg: &[u8]) -> Option<Text> {
    value(msg, b"blocked using ", b"; ,")
        .filter(|v| !v.is_empty())
        .map(text)
}

/// `QID: reject: RCPT from host[ip]: 554 ...; from=<a> to=<b> proto=...`
fn reject(qid: Option<&[u8]>, action: Action, service: &'static str, rest: &[u8]) -> Kind {
    let ip = value(rest, b" from ", b":")
        .map(|c| text(host_ip(c).1))
        .filter(|ip| !ip.is_empty());
    Kind::Reject(Box::new(Reject {
        qid: qid.filter(|q| *q != b"NOQUEUE").map(Qid::new),
        action,
        stage: Stage::of(rest),
        service,
        ip,
        from: angle(rest, b"from=<").map(address),
        to: angle(rest, b" to=<").map(address),
        dnsbl: dnsbl(rest),
    }))
}

/// postscreen's `[ip]:port` after a keyword.
fn bracket_ip(msg: &[u8], key: &[u8]) -> Option<Text> {
    let rest = &msg[find(msg, key)? + key.len()..];
    let open = memchr::memchr(b'[', rest)?;
    let close = memchr::memchr(b']', &rest[open..])? + open;
    Some(text(&rest[open + 1..close]))
}

fn postscreen(msg: &[u8]) -> Kind {
    let ip = |k: &[u8]| bracket_ip(msg, k);
    let found = if msg.starts_with(b"CONNECT from ") {
        ip(b"from ").map(|ip| Kind::ScreenConnect { ip })
    } else if msg.starts_with(b"PASS ") {
        ip(b"PASS ").map(|ip| Kind::ScreenPass { ip })
    } else if msg.starts_with(b"WHITELISTED ") || msg.starts_with(b"ALLOWLISTED ") {
        ip(b"LISTED ").map(|ip| Kind::ScreenList { ip, white: true })
    } else if msg.starts_with(b"BLACKLISTED ") || msg.starts_with(b"DENYLISTED ") {
        ip(b"LISTED ").map(|ip| Kind::ScreenList { ip, white: false })
    } else {
        None
    };
    found.unwrap_or_else(|| {
        const NOISE: &[&[u8]] = &[
            b"DNSBL rank",
            b"PREGREET",
            b"HANGUP",
            b"DISCONNECT",
            b"COMMAND ",
            b"BARE NEWLINE",
            b"NON-SMTP COMMAND",
            b"cache ",
            b"WHITELIST VETO",
            b"ALLOWLIST VETO",
            b"BDAT",
        ];
        if NOISE.iter().any(|n| msg.starts_with(n)) {
            Kind::Ignored
        } else {
            Kind::Unparsed {
                kind: Unknown::Postfix("postscreen"),
            }
        }
    })
}

/// Classifies one Postfix message (the text after `program[pid]: `).
pub fn classify(svc: Service, msg: &[u8]) -> Kind {
    let service = svc.name;
    if matches!(msg.first(), Some(b'w' | b'f' | b'p' | b'e')) {
        for (prefix, level) in [
            (&b"warning: "[..], "warning"),
            (b"fatal: ", "fatal"),
            (b"panic: ", "panic"),
            (b"error: ", "error"),
        ] {
            if msg.starts_with(prefix) {
                return Kind::Problem { service, level };
            }
        }
    }
    let first = split_word(msg);
    // `reject: ...` with no queue ID (old smtpd), counted by pflogsumm whatever the service.
    if let Some((word, rest)) = first
        && let Some(a) = action(word)
        && a != Action::MilterReject
    {
        return reject(None, a, service, rest);
    }
    match svc.role {
        Role::Postscreen => {
            if let Some(rest) = msg.strip_prefix(b"NOQUEUE: ")
                && let Some((word, rest)) = split_word(rest)
                && let Some(a) = action(word)
            {
                return reject(None, a, service, rest);
            }
            return postscreen(msg);
        }
        Role::Dnsblog => {
            if let (Some(ip), Some(list)) = (
                value(msg, b"addr ", b" "),
                value(msg, b" listed by domain ", b" "),
            ) {
                return Kind::DnsblHit {
                    ip: text(ip),
                    list: text(list),
                };
            }
            return Kind::Unparsed {
                kind: Unknown::Postfix("dnsblog"),
            };
        }
        Role::Quiet => {
            return Kind::Ignored;
        }
        _ => {}
    }
    if svc.role == Role::Smtpd {
        if let Some(c) = msg.strip_prefix(b"connect from ") {
            return Kind::Connect {
                ip: text(host_ip(c).1),
            };
        }
        const NOISE: &[&[u8]] = &[
            b"disconnect from ",
            b"lost connection ",
            b"timeout after ",
            b"too many errors ",
            b"Anonymous TLS",
            b"Untrusted TLS",
            b"Trusted TLS",
            b"Verified TLS",
            b"SSL_accept error",
            b"improper command pipelining",
            b"NOQUEUE: lost connection",
            b"NOQUEUE: filter:",
            b"NOQUEUE: client=",
            b"setting up TLS",
            b"TLS SNI",
            b"NOQUEUE: warn:",
        ];
        if starts_with_any(msg, NOISE) {
            return Kind::Ignored;
        }
    }
    let Some((qid, rest)) = first else {
        return Kind::Unparsed {
            kind: Unknown::Postfix(service),
        };
    };
    if svc.role == Role::Smtpd {
        if let Some(client) = rest.strip_prefix(b"client=") {
            let end = memchr::memchr(b',', client).unwrap_or(client.len());
            return Kind::Client {
                qid: Qid::new(qid),
                client: text(&client[..end]),
                sasl_user: value(client, b"sasl_username=", b", ").map(text),
            };
        }
        if let Some((word, rest)) = split_word(rest)
            && let Some(a) = action(word)
        {
            return reject(Some(qid), a, service, rest);
        }
    }
    if svc.role == Role::Cleanup {
        // Nearly every message has one: settle it before scanning for a check's verdict.
        if rest.starts_with(b"message-id=") || rest.starts_with(b"resent-message-id=") {
            return Kind::Ignored;
        }
        // pflogsumm: `\b((?:milter-)?reject|warning|hold|discard): (header|body|END-OF-MESSAGE) `
        if let Some((word, after)) = split_word(rest)
            && [&b"header "[..], b"body ", b"END-OF-MESSAGE "]
                .iter()
                .any(|s| after.starts_with(s))
        {
            let a = match word {
                b"reject" | b"milter-reject" => Some(Action::Reject),
                b"warning" => Some(Action::Warning),
                b"hold" => Some(Action::Hold),
                b"discard" => Some(Action::Discard),
                _ => None,
            };
            if let Some(a) = a {
                return reject(Some(qid), a, service, after);
            }
        }
    }
    if svc.role == Role::Pickup && (rest.starts_with(b"uid=") || rest.starts_with(b"sender=")) {
        let sender = angle(rest, b"from=<")
            .or_else(|| angle(rest, b"sender=<"))
            .unwrap_or(b"");
        return Kind::Pickup {
            qid: Qid::new(qid),
            sender: address(sender),
        };
    }
    if rest == b"removed" {
        return Kind::Removed { qid: Qid::new(qid) };
    }
    if let Some(from) = rest.strip_prefix(b"from=<")
        && let Some(close) = memchr::memchr(b'>', from)
        && let Some(size) = value(&from[close..], b", size=", b",").and_then(number)
    {
        let nrcpt = value(&from[close..], b", nrcpt=", b" ,")
            .and_then(number)
            .unwrap_or(0);
        return Kind::QueueFrom {
            qid: Qid::new(qid),
            sender: address(&from[..close]),
            size,
            nrcpt: nrcpt.min(u64::from(u32::MAX)) as u32,
        };
    }
    if let Some(d) = delivery(qid, service, rest) {
        return d;
    }
    const NOISE: &[&[u8]] = &[
        b"sender non-delivery notification",
        b"sender delivery status notification",
        b"postmaster non-delivery",
        b"from=<",
        b"host ",
        b"conversation with",
        b"lost connection",
        b"enabling PIX",
        b"Cannot start TLS",
        b"Untrusted TLS",
        b"Trusted TLS",
        b"Verified TLS",
        b"Anonymous TLS",
        // smtp_line_length_limit at work on a long body line.
        b"breaking line > ",
    ];
    if starts_with_any(rest, NOISE) || svc.role == Role::Smtp && msg.starts_with(b"connect to ") {
        return Kind::Ignored;
    }
    Kind::Unparsed {
        kind: Unknown::Postfix(service),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str) -> Service {
        service(format!("postfix/{name}").as_bytes()).unwrap()
    }

    #[test]
    fn delivery_lines() {
        let k = classify(
            svc("lmtp"), b"D94: to=<Alice@Example.COM>, orig_to=<a@x>, relay=127.0.0.1[127.0.0.1]:24, delay=0.03, delays=0.01/0.01/0/0.01, dsn=2.0.0, status=sent (250 2.0.0 Saved)");
        let Kind::Delivery {
            to,
            status,
            forwarded,
            ..
        } = k
        else {
            panic!("{k:?}")
        };
        assert_eq!(&*to, "Alice@example.com");
        assert_eq!(status, Status::Sent);
        assert!(!forwarded);
        let k = classify(
            svc("error"), b"C9: to=<m@x.com>, relay=none, delay=46621, delays=46619/1.4/0/0.05, dsn=4.3.0, status=deferred (unknown mail transport error)");
        assert!(matches!(
            k,
            Kind::Delivery {
                status: Status::Deferred,
                ..
            }
        ));
    }

    #[test]
    fn rejects_and_clients() {
        let k = classify(
            svc("smtpd"), b"NOQUEUE: reject: RCPT from unknown[1.2.3.4]: 554 5.7.1 Service unavailable; Client host [1.2.3.4] blocked using zen.spamhaus.org; https://x; from=<s@y.com> to=<a@b.com> proto=ESMTP helo=<h>");
        let Kind::Reject(r) = k else { panic!("{k:?}") };
        let Reject {
            action,
            ip,
            dnsbl,
            from,
            to,
            qid,
            stage,
            ..
        } = *r;
        assert_eq!((action, qid, stage), (Action::Reject, None, Stage::Rcpt));
        assert_eq!(ip.as_deref(), Some("1.2.3.4"));
        assert_eq!(dnsbl.as_deref(), Some("zen.spamhaus.org"));
        assert_eq!(
            (from.as_deref(), to.as_deref()),
            (Some("s@y.com"), Some("a@b.com"))
        );
        let k = classify(
            svc("smtpd"),
            b"4F2: client=mail.x.org[5.6.7.8], sasl_method=PLAIN, sasl_username=bob@example.com",
        );
        assert!(
            matches!(k, Kind::Client { ref sasl_user, .. } if sasl_user.as_deref() == Some("bob@example.com")),
            "{k:?}"
        );
        let k = classify(
            svc("cleanup"),
            b"4F2: milter-reject: END-OF-MESSAGE from x[1.1.1.1]: 5.7.1 spam; from=<a@b> to=<c@d>",
        );
        assert!(
            matches!(k, Kind::Reject(ref r) if r.action == Action::Reject && r.stage == Stage::EndOfMessage),
            "{k:?}"
        );
        let k = classify(
            svc("cleanup"),
            b"4F3: reject: header Subject: buy now from x[1.1.1.1]; from=<a@b> to=<c@d> proto=ESMTP helo=<h>: 5.7.1 no",
        );
        assert!(
            matches!(k, Kind::Reject(ref r) if r.stage == Stage::Header && r.stage.after_data()),
            "{k:?}"
        );
    }

    #[test]
    fn queue_lines() {
        let k = classify(
            svc("qmgr"),
            b"345C: from=<root@X.com>, size=486, nrcpt=1 (queue active)",
        );
        assert_eq!(
            k,
            Kind::QueueFrom {
                qid: "345C".into(),
                sender: "root@x.com".into(),
                size: 486,
                nrcpt: 1
            }
        );
        assert_eq!(
            classify(svc("qmgr"), b"345C: removed"),
            Kind::Removed { qid: "345C".into() }
        );
        assert!(matches!(
            classify(svc("pickup"), b"12A: uid=0 from=<root>"),
            Kind::Pickup { .. }
        ));
    }

    #[test]
    fn long_line_folding_is_known_noise() {
        assert_eq!(
            classify(
                svc("lmtp"),
                b"6FA329C43F8: breaking line > 998 bytes with <CR><LF>SPACE"
            ),
            Kind::Ignored
        );
    }

    #[test]
    fn postscreen_and_dnsblog() {
        assert!(matches!(
            classify(
                svc("postscreen"),
                b"CONNECT from [1.2.3.4]:5555 to [10.0.0.1]:25"
            ),
            Kind::ScreenConnect { .. }
        ));
        let k = classify(
            svc("dnsblog"),
            b"addr 1.2.3.4 listed by domain zen.spamhaus.org as 127.0.0.2",
        );
        assert_eq!(
            k,
            Kind::DnsblHit {
                ip: "1.2.3.4".into(),
                list: "zen.spamhaus.org".into()
            }
        );
        let k = classify(
            svc("postscreen"), b"NOQUEUE: reject: RCPT from [1.2.3.4]:5555: 550 5.7.1 Service unavailable; client [1.2.3.4] blocked using bl.test; from=<a@b>, to=<c@d>, proto=ESMTP, helo=<x>");
        assert!(
            matches!(k, Kind::Reject(ref r) if r.dnsbl.as_deref() == Some("bl.test")),
            "{k:?}"
        );
    }
}

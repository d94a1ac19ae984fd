//! Classifying content filters' results: SpamAssassin's spamd (and spamc), amavis, Rspamd.

use crate::event::scan::{find, text, value};
use crate::event::{Kind, Text, Verdict};

/// Whether a syslog program is a content filter this module reads.
pub fn is_filter(program: &[u8]) -> bool {
    matches!(
        program,
        b"spamd" | b"spamc" | b"amavis" | b"amavisd" | b"rspamd"
    ) || program.starts_with(b"amavis")
}

fn rules(list: &[u8], sep: u8, name_end: &[u8]) -> Vec<Text> {
    list.split(|b| *b == sep)
        .map(|r| {
            let end = r
                .iter()
                .position(|b| name_end.contains(b))
                .unwrap_or(r.len());
            &r[..end]
        })
        .filter(|r| !r.is_empty())
        .map(text)
        .collect()
}

/// `spamd: result: Y 15 - RULE_A,RULE_B scantime=...`
fn spamd(msg: &[u8]) -> Kind {
    let Some(i) = find(msg, b"result: ") else {
        return Kind::Ignored;
    };
    let rest = &msg[i + 8..];
    let spam = rest.starts_with(b"Y");
    let mut parts = rest.split(|b| *b == b' ').filter(|p| !p.is_empty());
    let list = parts.nth(3).unwrap_or(b"");
    let list: &[u8] = if list.starts_with(b"scantime=") {
        b""
    } else {
        list
    };
    Kind::Scan {
        engine: "spamassassin".into(),
        qid: None,
        verdict: if spam { Verdict::Spam } else { Verdict::Clean },
        rules: rules(list, b',', b""),
    }
}

/// `(1234-01) Passed CLEAN {RelayedInbound}, ... Queue-ID: QID, ... Hits: 1.2, ... tests=[A=1,B=2]`
fn amavis(msg: &[u8]) -> Kind {
    let body = match memchr::memchr(b')', msg) {
        Some(i) if msg.starts_with(b"(") => msg[i + 1..].trim_ascii_start(),
        _ => msg,
    };
    if !(body.starts_with(b"Passed ") || body.starts_with(b"Blocked ")) {
        return Kind::Ignored;
    }
    let category = value(body, b" ", b" ,{").unwrap_or(b"");
    let hits = value(body, b"Hits: ", b",").unwrap_or(b"");
    let verdict = if hits == b"-" {
        Verdict::NotScanned
    } else if category.starts_with(b"SPAM")
        || category.starts_with(b"INFECTED")
        || category.starts_with(b"BANNED")
    {
        Verdict::Spam
    } else {
        Verdict::Clean
    };
    Kind::Scan {
        engine: "amavis".into(),
        qid: value(body, b"Queue-ID: ", b", ").map(text),
        verdict,
        rules: value(body, b"tests=[", b"]")
            .map(|t| rules(t, b',', b"="))
            .unwrap_or_default(),
    }
}

/// `rspamd_task_write_log: id: <..>, qid: <QID>, ... (default: T (reject): [16.50/15.00] [SYM(1.0){..},...]`
fn rspamd(msg: &[u8]) -> Kind {
    let Some(i) = find(msg, b"(default: ") else {
        return Kind::Ignored;
    };
    let rest = &msg[i + 10..];
    let action = value(rest, b"(", b")").unwrap_or(b"");
    let verdict = if action == b"no action" {
        Verdict::Clean
    } else {
        Verdict::Spam
    };
    let symbols = find(rest, b"] [").map(|j| &rest[j + 3..]).and_then(|s| {
        // Symbols are `NAME(score){options}` separated by commas; options may hold commas.
        let mut depth = 0i32;
        let end = s.iter().position(|&b| {
            match b {
                b'{' | b'(' => depth += 1,
                b'}' | b')' => depth -= 1,
                b']' if depth == 0 => return true,
                _ => {}
            }
            false
        })?;
        Some(&s[..end])
    });
    let mut names = Vec::new();
    if let Some(s) = symbols {
        let mut depth = 0i32;
        let mut start = 0;
        for (k, &b) in s.iter().enumerate() {
            match b {
                b'{' | b'(' => {
                    if depth == 0 && b == b'(' {
                        names.push(text(&s[start..k]));
                    }
                    depth += 1;
                }
                b'}' | b')' => depth -= 1,
                b',' if depth == 0 => start = k + 1,
                _ => {}
            }
        }
    }
    Kind::Scan {
        engine: "rspamd".into(),
        qid: value(msg, b"qid: <", b">").map(text),
        verdict,
        rules: names,
    }
}

/// Classifies one content-filter line.
pub fn classify(program: &[u8], msg: &[u8]) -> Kind {
    match program {
        b"spamd" => spamd(msg),
        b"spamc" if find(msg, b"skipped message, greater than max").is_some() => Kind::Scan {
            engine: "spamassassin".into(),
            qid: None,
            verdict: Verdict::TooLarge,
            rules: Vec::new(),
        },
        b"rspamd" => rspamd(msg),
        p if p.starts_with(b"amavis") => amavis(msg),
        _ => Kind::Ignored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spamd_result() {
        let k = classify(b"spamd", b"spamd: result: Y 15 - BAYES_99,HTML_MESSAGE,URIBL_BLACK scantime=0.5,size=3000,user=x,uid=1,required_score=5.0,rhost=l,raddr=127.0.0.1,rport=1,mid=<m>,autolearn=no");
        assert_eq!(
            k,
            Kind::Scan {
                engine: "spamassassin".into(),
                qid: None,
                verdict: Verdict::Spam,
                rules: vec![
                    "BAYES_99".into(),
                    "HTML_MESSAGE".into(),
                    "URIBL_BLACK".into()
                ]
            }
        );
        let k = classify(b"spamd", b"spamd: result: . 0 - scantime=0.1,size=100");
        assert!(
            matches!(k, Kind::Scan { verdict: Verdict::Clean, ref rules, .. } if rules.is_empty()),
            "{k:?}"
        );
    }

    #[test]
    fn amavis_result() {
        let k = classify(b"amavis", b"(01234-05) Passed SPAM {RelayedTaggedInbound}, [1.2.3.4]:999 [1.2.3.4] <a@b> -> <c@d>, Queue-ID: 4F2A, Message-ID: <m>, mail_id: x, Hits: 9.1, size: 800, queued_as: 5B3C, tests=[BAYES_99=3.5,RDNS_NONE=0.8], 1200 ms");
        assert_eq!(
            k,
            Kind::Scan {
                engine: "amavis".into(),
                qid: Some("4F2A".into()),
                verdict: Verdict::Spam,
                rules: vec!["BAYES_99".into(), "RDNS_NONE".into()]
            }
        );
    }

    #[test]
    fn rspamd_result() {
        let k = classify(b"rspamd", b"<abc>; task; rspamd_task_write_log: id: <m@x>, qid: <7E1F>, ip: 1.2.3.4, from: <a@b>, (default: T (reject): [16.50/15.00] [BAYES_SPAM(5.10){99.9%;},R_SPF_FAIL(1.00){-all;}]), len: 1200, time: 40ms");
        assert_eq!(
            k,
            Kind::Scan {
                engine: "rspamd".into(),
                qid: Some("7E1F".into()),
                verdict: Verdict::Spam,
                rules: vec!["BAYES_SPAM".into(), "R_SPF_FAIL".into()]
            }
        );
    }
}

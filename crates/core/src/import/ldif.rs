//! LDIF import (RFC 2849 content records): entries carrying the address attribute become
//! accounts; others (organisational units, groups) are skipped.

use base64::Engine;

use super::{Attributes, ImportError, Record};

struct Entry {
    line: usize,
    attrs: Vec<(String, String)>,
}

pub(super) fn parse(
    text: &str,
    file: &str,
    names: &Attributes,
) -> Result<Vec<Record>, ImportError> {
    let mut out = Vec::new();
    for entry in entries(text, file)? {
        let get = |name: &str| {
            entry
                .attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let Some(address) = get(&names.address) else {
            continue;
        };
        let server = get(&names.mailbox_server).ok_or_else(|| ImportError::Record {
            file: file.to_string(),
            line: entry.line,
            message: format!("entry for {address} has no {}", names.mailbox_server),
        })?;
        out.push(Record {
            line: entry.line,
            address,
            server,
            password_hash: get(&names.password_hash),
        });
    }
    Ok(out)
}

/// Splits into entries, unfolding continuation lines and decoding `::` base64 values.
fn entries(text: &str, file: &str) -> Result<Vec<Entry>, ImportError> {
    let syntax = |line: usize, message: String| ImportError::Syntax {
        file: file.to_string(),
        line,
        message,
    };
    // Unfold first: a line starting with one space continues the previous one.
    let mut logical: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = raw.strip_prefix(' ') {
            match logical.last_mut() {
                Some((_, prev)) if !prev.is_empty() && !prev.starts_with('#') => {
                    prev.push_str(rest)
                }
                Some((_, prev)) if prev.starts_with('#') => {}
                _ => {
                    return Err(syntax(
                        i + 1,
                        "continuation line with nothing to continue".into(),
                    ));
                }
            }
        } else {
            logical.push((i + 1, raw.to_string()));
        }
    }
    let mut out = Vec::new();
    let mut current: Option<Entry> = None;
    for (line, l) in logical {
        if l.is_empty() {
            out.extend(current.take());
            continue;
        }
        if l.starts_with('#') {
            continue;
        }
        let (name, value) = l
            .split_once(':')
            .ok_or_else(|| syntax(line, format!("expected 'attribute: value', found {l:?}")))?;
        let value = if let Some(b64) = value.strip_prefix(':') {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| syntax(line, format!("{name}: bad base64: {e}")))?;
            String::from_utf8(bytes)
                .map_err(|_| syntax(line, format!("{name}: value is not UTF-8")))?
        } else if value.starts_with('<') {
            return Err(syntax(
                line,
                format!("{name}: URL values are not supported"),
            ));
        } else {
            value.trim_start().to_string()
        };
        if name.eq_ignore_ascii_case("version") && current.is_none() {
            continue;
        }
        if name.eq_ignore_ascii_case("changetype") {
            return Err(syntax(
                line,
                "change records are not supported: give content records".into(),
            ));
        }
        if name.eq_ignore_ascii_case("dn") {
            if current.is_some() {
                return Err(syntax(
                    line,
                    "dn: inside an entry (missing blank line?)".into(),
                ));
            }
            current = Some(Entry {
                line,
                attrs: Vec::new(),
            });
            continue;
        }
        let entry = current
            .as_mut()
            .ok_or_else(|| syntax(line, format!("{name}: attribute before any dn:")))?;
        entry.attrs.push((name.to_string(), value));
    }
    out.extend(current);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_entries_folding_and_base64() {
        let text = "version: 1\n\ndn: ou=people,dc=x\nobjectClass: organizationalUnit\n\n\
                    dn: mail=a@x.com,ou=people,dc=x\nmail: a@x.com\nmailHost: st\n ore1\n\
                    userPassword:: e0NSWVBUfXh5eg==\n";
        let r = parse(text, "f.ldif", &Attributes::default()).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].line, 6);
        assert_eq!(r[0].server, "store1");
        assert_eq!(r[0].password_hash.as_deref(), Some("{CRYPT}xyz"));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "mail: a@x.com\n",
            "dn: x\nnot an attribute\n",
            "dn: x\nchangetype: add\n",
            "dn: x\nmail:: !!!\n",
        ] {
            assert!(parse(bad, "f", &Attributes::default()).is_err(), "{bad:?}");
        }
    }
}

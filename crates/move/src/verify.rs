//! What a mailbox is on a store, folder by folder, as doveadm reports it: the message count,
//! UIDVALIDITY, UIDNEXT and mailbox GUID, and each message's UID, GUID, flags and keywords,
//! received date and POP3 UIDL. Two stores holding the same mailbox report the same; the
//! switch waits for that.

use std::collections::BTreeMap;
use std::time::Duration;

use mailfleet_core::{Address, Server};
use mailfleet_remote::Reach;

use crate::copy::run_doveadm;
use crate::error::MoveError;

/// One folder of a mailbox.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FolderState {
    /// Messages in it.
    pub messages: u64,
    /// Its UIDVALIDITY.
    pub uidvalidity: String,
    /// Its UIDNEXT.
    pub uidnext: String,
    /// Its mailbox GUID.
    pub guid: String,
    /// Per UID: the message's GUID, flags and keywords (sorted, `\Recent` left out: it is
    /// per session), received date and POP3 UIDL.
    pub mail: BTreeMap<u64, String>,
}

/// Splits doveadm's `-f tab` output into rows keyed by its header.
fn rows<'a>(server: &Server, text: &'a str, want: &[&str]) -> Result<Vec<Vec<&'a str>>, MoveError> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split('\t').collect();
    let at: Vec<usize> = want
        .iter()
        .map(|w| {
            header
                .iter()
                .position(|h| h == w)
                .ok_or_else(|| MoveError::Output {
                    server: server.name.clone(),
                    line: header.join("\t"),
                })
        })
        .collect::<Result<_, _>>()?;
    Ok(lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            at.iter()
                .map(|i| cols.get(*i).copied().unwrap_or(""))
                .collect()
        })
        .collect())
}

/// `doveadm mailbox status` of every folder of `user`, in doveadm's tab format.
async fn status(
    reach: &Reach,
    server: &Server,
    user: &str,
    fields: &str,
    deadline: Duration,
) -> Result<String, MoveError> {
    let args = ["-f", "tab", "mailbox", "status", "-u", user, fields, "*"];
    run_doveadm(reach, server, &args, deadline).await
}

/// Every folder of `address` on `server`.
pub async fn folders(
    reach: &Reach,
    server: &Server,
    address: &Address,
    deadline: Duration,
) -> Result<BTreeMap<String, FolderState>, MoveError> {
    let user = address.to_string();
    let status = status(
        reach,
        server,
        &user,
        "messages uidvalidity uidnext guid",
        deadline,
    )
    .await?;
    let mut out = BTreeMap::new();
    for r in rows(
        server,
        &status,
        &["mailbox", "messages", "uidvalidity", "uidnext", "guid"],
    )? {
        let messages = r[1].parse().map_err(|_| MoveError::Output {
            server: server.name.clone(),
            line: r.join("\t"),
        })?;
        out.insert(
            r[0].to_string(),
            FolderState {
                messages,
                uidvalidity: r[2].into(),
                uidnext: r[3].into(),
                guid: r[4].into(),
                mail: BTreeMap::new(),
            },
        );
    }
    let fetched = run_doveadm(
        reach,
        server,
        &[
            "-f",
            "tab",
            "fetch",
            "-u",
            &user,
            "mailbox uid guid flags date.received pop3.uidl",
            "all",
        ],
        deadline,
    )
    .await?;
    for r in rows(
        server,
        &fetched,
        &[
            "mailbox",
            "uid",
            "guid",
            "flags",
            "date.received",
            "pop3.uidl",
        ],
    )? {
        let uid = r[1].parse().map_err(|_| MoveError::Output {
            server: server.name.clone(),
            line: r.join("\t"),
        })?;
        let mut flags: Vec<&str> = r[3]
            .split(' ')
            .filter(|f| !f.is_empty() && *f != "\\Recent")
            .collect();
        flags.sort_unstable();
        if let Some(f) = out.get_mut(r[0]) {
            f.mail.insert(
                uid,
                format!("{} [{}] {} {}", r[2], flags.join(" "), r[4], r[5]),
            );
        }
    }
    Ok(out)
}

/// How two stores' copies of a mailbox differ, one line per difference; empty when equal.
pub fn compare(
    source: &BTreeMap<String, FolderState>,
    target: &BTreeMap<String, FolderState>,
) -> Vec<String> {
    let mut diff = Vec::new();
    for (name, s) in source {
        let Some(t) = target.get(name) else {
            diff.push(format!("{name}: missing on the target"));
            continue;
        };
        for (what, a, b) in [
            ("UIDVALIDITY", &s.uidvalidity, &t.uidvalidity),
            ("UIDNEXT", &s.uidnext, &t.uidnext),
            ("mailbox GUID", &s.guid, &t.guid),
        ] {
            if a != b {
                diff.push(format!(
                    "{name}: {what} {a} on the source, {b} on the target"
                ));
            }
        }
        if s.messages != t.messages {
            diff.push(format!(
                "{name}: {} messages on the source, {} on the target",
                s.messages, t.messages
            ));
        }
        for (uid, m) in &s.mail {
            match t.mail.get(uid) {
                None => diff.push(format!("{name}: UID {uid} missing on the target")),
                Some(n) if n != m => diff.push(format!("{name}: UID {uid}: {m} / {n}")),
                Some(_) => {}
            }
        }
        for uid in t.mail.keys().filter(|u| !s.mail.contains_key(u)) {
            diff.push(format!("{name}: UID {uid} only on the target"));
        }
    }
    for name in target.keys().filter(|n| !source.contains_key(*n)) {
        diff.push(format!("{name}: only on the target"));
    }
    diff
}

/// How big a mailbox is on a store: messages and bytes (Dovecot's virtual size, the size
/// IMAP clients see), all folders together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Size {
    /// Messages.
    pub messages: u64,
    /// Bytes.
    pub bytes: u64,
}

/// The size of `address`'s mailbox on `server`.
pub async fn size(
    reach: &Reach,
    server: &Server,
    address: &Address,
    deadline: Duration,
) -> Result<Size, MoveError> {
    let status = status(
        reach,
        server,
        &address.to_string(),
        "messages vsize",
        deadline,
    )
    .await?;
    let mut total = Size::default();
    for r in rows(server, &status, &["messages", "vsize"])? {
        let num = |s: &str| {
            s.parse::<u64>().map_err(|_| MoveError::Output {
                server: server.name.clone(),
                line: r.join("\t"),
            })
        };
        total.messages += num(r[0])?;
        total.bytes += num(r[1])?;
    }
    Ok(total)
}

/// A digest of every folder's state: the old copy's at the switch, compared later to find a
/// write that reached it after the account had left.
pub fn digest(folders: &BTreeMap<String, FolderState>) -> String {
    let mut h = blake3::Hasher::new();
    for (name, f) in folders {
        h.update(
            format!(
                "{name}\0{}\0{}\0{}\0{}\n",
                f.messages, f.uidvalidity, f.uidnext, f.guid
            )
            .as_bytes(),
        );
        for (uid, m) in &f.mail {
            h.update(format!("{uid} {m}\n").as_bytes());
        }
    }
    h.finalize().to_hex().to_string()
}

//! Restoring into the live store over IMAP: each message is APPENDed to its folder with its
//! flags and internal date, logged in as the account through Dovecot's master user
//! (`ACCOUNT*MASTER`). A message the folder already holds (same Message-ID, Date, From and
//! Subject) is skipped, so running the same restore twice adds nothing.

use std::collections::HashSet;
use std::sync::Arc;

use mailfleet_mailclient::imap::Imap;
use mailfleet_mailclient::{Clock, Endpoint, MailError, Tls};
use serde::Serialize;

use crate::error::BackupError;
use crate::repo::Repository;
use crate::restore::{FailedMessage, Filter, folder_name, is_damage, matches, may_match};
use crate::snapshot::{AccountTree, Folder, MessageEntry, Snapshot};

/// The header fields that identify a message for duplicate detection.
const IDENTITY: [&str; 4] = ["message-id", "date", "from", "subject"];

/// Where an account's store answers IMAP.
pub struct StoreAddr {
    /// The store's name in the config.
    pub server: String,
    /// Host.
    pub host: String,
    /// IMAP port.
    pub port: u16,
    /// The store's TLS settings (STARTTLS when offered, or as they require).
    pub tls: Tls,
}

/// How to log in to the store for each account.
pub struct Login<'a> {
    /// The master user (Dovecot `auth_master_user_separator = *`).
    pub master_user: &'a str,
    /// Its password.
    pub master_password: &'a str,
    /// Deadline of each IMAP command.
    pub timeout: std::time::Duration,
}

/// What an IMAP restore did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IntoStoreReport {
    /// Accounts restored.
    pub accounts: u64,
    /// Messages appended.
    pub appended: u64,
    /// Messages skipped because the folder already had them.
    pub skipped: u64,
    /// Folders created.
    pub created_folders: u64,
    /// Messages that could not be rebuilt from the repository (damaged or missing data);
    /// everything else was restored.
    pub failed: Vec<FailedMessage>,
}

/// A message's identity from its header block: the identity fields, unfolded, in order,
/// whitespace collapsed and lower-cased.
pub fn identity(header_block: &[u8]) -> String {
    let text = String::from_utf8_lossy(header_block).replace("\r\n", "\n");
    let end = text.find("\n\n").unwrap_or(text.len());
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text[..end].split('\n') {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    IDENTITY
        .iter()
        .map(|want| {
            fields
                .iter()
                .find(|(n, _)| n == want)
                .map(|(_, v)| {
                    v.split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                        .to_lowercase()
                })
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// The IMAP flags of a Maildir message (keywords through the folder's dovecot-keywords).
pub fn imap_flags(m: &MessageEntry, folder: &Folder) -> Vec<String> {
    let keywords: Vec<(usize, &str)> = folder
        .keywords
        .as_deref()
        .unwrap_or("")
        .lines()
        .filter_map(|l| {
            let (n, k) = l.split_once(' ')?;
            Some((n.parse().ok()?, k.trim()))
        })
        .collect();
    m.flags()
        .chars()
        .filter_map(|c| match c {
            'D' => Some("\\Draft".to_string()),
            'F' => Some("\\Flagged".to_string()),
            'P' => Some("$Forwarded".to_string()),
            'R' => Some("\\Answered".to_string()),
            'S' => Some("\\Seen".to_string()),
            'T' => Some("\\Deleted".to_string()),
            'a'..='z' => {
                let i = (c as u8 - b'a') as usize;
                keywords
                    .iter()
                    .find(|(n, _)| *n == i)
                    .map(|(_, k)| (*k).to_string())
            }
            _ => None,
        })
        .collect()
}

fn internal_date(mtime: (i64, u32)) -> String {
    let t = chrono::DateTime::from_timestamp(mtime.0, 0).unwrap_or_default();
    format!("\"{}\"", t.format("%d-%b-%Y %H:%M:%S +0000"))
}

/// The identities of the messages a folder holds (opening it).
async fn existing(s: &mut Imap, mailbox: &str) -> Result<HashSet<String>, MailError> {
    let m = s.select(mailbox).await?;
    let mut out = HashSet::new();
    if m.exists == 0 {
        return Ok(out);
    }
    let fetched = s
        .fetch(
            "1:*",
            "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM SUBJECT)]",
        )
        .await?;
    for f in fetched {
        if let Some(h) = f.header() {
            out.insert(identity(h));
        }
    }
    Ok(out)
}

/// Runs a repository read off the async threads.
async fn blocking<T: Send + 'static>(
    repo: &Arc<Repository>,
    f: impl FnOnce(&Repository) -> Result<T, BackupError> + Send + 'static,
) -> Result<T, BackupError> {
    let repo = Arc::clone(repo);
    crate::blocking::off_runtime("a restore", move || f(&repo)).await
}

/// Restores the snapshot's matching messages into each account's store; `store_of` says
/// where an account's store is, or why it cannot be reached.
pub async fn into_store(
    repo: &Arc<Repository>,
    snapshot: &Snapshot,
    filter: &Filter,
    login: &Login<'_>,
    store_of: &dyn Fn(&str) -> Result<StoreAddr, BackupError>,
) -> Result<IntoStoreReport, BackupError> {
    let mut report = IntoStoreReport::default();
    for a in snapshot
        .accounts
        .iter()
        .filter(|a| filter.account.as_ref().is_none_or(|w| &a.address == w))
    {
        let addr = store_of(&a.address)?;
        let imap = |e: MailError| BackupError::Imap {
            server: addr.server.clone(),
            account: a.address.clone(),
            error: e,
        };
        let tree_id = a.tree;
        let tree: AccountTree = match blocking(repo, move |r| r.get_json(&tree_id)).await {
            Ok(t) => t,
            Err(e) if is_damage(&e) => {
                report
                    .failed
                    .push(FailedMessage::folder_list(&a.address, &e));
                continue;
            }
            Err(e) => return Err(e),
        };
        let at = Endpoint {
            host: &addr.host,
            port: addr.port,
            tls: Some(&addr.tls),
            implicit: false,
        };
        let clock = Clock::new(login.timeout);
        let mut s = Imap::master_login(
            &at,
            &a.address,
            login.master_user,
            login.master_password,
            &clock,
        )
        .await
        .map_err(imap)?;
        for folder in &tree.folders {
            let name = folder_name(&folder.dir);
            if filter
                .folder
                .as_ref()
                .is_some_and(|w| !name.eq_ignore_ascii_case(w))
            {
                continue;
            }
            if name != "INBOX" {
                match s.create(&name).await {
                    Ok(()) => {
                        report.created_folders += 1;
                        s.subscribe(&name).await.map_err(imap)?;
                    }
                    // It exists already; anything worse shows on SELECT.
                    Err(e) if e.server_text().is_some() => {}
                    Err(e) => return Err(imap(e)),
                }
            }
            let mut have = existing(&mut s, &name).await.map_err(imap)?;
            for m in &folder.messages {
                let entry = m.clone();
                let rebuilt =
                    blocking(repo, move |r| crate::restore::rebuild_message(r, &entry)).await?;
                let raw = match rebuilt {
                    Ok(raw) => raw,
                    Err((message_id, e)) => {
                        if may_match(filter, message_id.as_deref()) {
                            report.failed.push(FailedMessage {
                                account: a.address.clone(),
                                folder: name.clone(),
                                file: m.file_name(),
                                message_id,
                                error: e.to_string(),
                            });
                        }
                        continue;
                    }
                };
                if !matches(filter, &raw) {
                    continue;
                }
                if !have.insert(identity(&raw)) {
                    report.skipped += 1;
                    continue;
                }
                let flags = imap_flags(m, folder);
                let flags = (!flags.is_empty()).then(|| format!("({})", flags.join(" ")));
                s.append(&name, flags.as_deref(), Some(&internal_date(m.mtime)), &raw)
                    .await
                    .map_err(imap)?;
                report.appended += 1;
            }
        }
        s.logout().await;
        report.accounts += 1;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_ignores_folding_case_and_line_ends() {
        let a =
            identity(b"Subject: Hello\r\n  World\r\nMessage-ID: <x@y>\r\nX-Other: 1\r\n\r\nbody");
        let b = identity(b"message-id:   <X@Y>\nsubject: hello world\n\nother body");
        assert_eq!(a, b);
        assert_ne!(a, identity(b"Subject: Hello World\nMessage-ID: <z@y>\n\n"));
    }

    #[test]
    fn maildir_flags_and_keywords_become_imap_flags() {
        let folder = Folder {
            keywords: Some("0 $Important\n1 Work\n".into()),
            ..Folder::default()
        };
        let m = MessageEntry {
            base: "1.2.host".into(),
            info: Some("2,FRSb".into()),
            new: false,
            uid: None,
            size: 1,
            mtime: (0, 0),
            recipe: crate::BlobId::of(b""),
        };
        assert_eq!(
            imap_flags(&m, &folder),
            ["\\Flagged", "\\Answered", "\\Seen", "Work"]
        );
        assert_eq!(
            internal_date((1_795_000_000, 0)),
            "\"18-Nov-2026 11:06:40 +0000\""
        );
    }
}

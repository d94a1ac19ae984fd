//! A real corpus for the backup tests: SpamAssassin's public corpus (fetched by
//! scripts/fetch-corpus), delivered through the stack's Postfix, some messages to many
//! recipients and some attachments forwarded in new messages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub(crate) const ACCOUNTS: [&str; 5] = [
    "alice@example.com",
    "bob@example.com",
    "erin@example.com",
    "carol@example.org",
    "dave@example.org",
];

pub(crate) fn corpus_dir() -> PathBuf {
    let dir = std::env::var_os("MAILFLEET_CORPUS").map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/corpus/spam-assassin/package/data")
        },
        PathBuf::from,
    );
    assert!(
        dir.is_dir(),
        "the SpamAssassin corpus is not at {}: run scripts/fetch-corpus",
        dir.display()
    );
    dir
}

/// A sample of the corpus: every message with a base64 part and a spread of the others,
/// without the mbox `From ` line.
pub(crate) fn corpus(others: usize) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .flatten()
        .filter(|d| d.path().is_dir())
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    let mut with_b64 = Vec::new();
    let mut plain = Vec::new();
    for f in files {
        let raw = std::fs::read(&f).unwrap();
        let raw = match raw.strip_prefix(b"From ") {
            Some(_) => raw[raw.iter().position(|&b| b == b'\n').unwrap() + 1..].to_vec(),
            None => raw,
        };
        if String::from_utf8_lossy(&raw)
            .to_ascii_lowercase()
            .contains("content-transfer-encoding: base64")
        {
            with_b64.push(raw);
        } else {
            plain.push(raw);
        }
    }
    let step = (plain.len() / others).max(1);
    with_b64.extend(plain.into_iter().step_by(step).take(others));
    with_b64
}

/// A new message forwarding the first base64 attachment of `original` (its part headers and
/// body verbatim, as a mail client forwarding it does).
pub(crate) fn forward(original: &[u8], n: usize) -> Option<Vec<u8>> {
    let msg = mail_parser::MessageParser::default().parse(original)?;
    let part = msg.parts.iter().find(|p| {
        p.encoding == mail_parser::Encoding::Base64 && p.offset_end - p.offset_body > 2048
    })?;
    let part_raw = &original[part.offset_header as usize..part.offset_end as usize];
    let mut out = format!(
        "From: alice@example.com\nTo: bob@example.com\nSubject: Fwd: attachment {n}\nMessage-ID: <fwd-{n}@mailfleet.test>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"fwd-{n}\"\n\n--fwd-{n}\nContent-Type: text/plain\n\nSee the attachment.\n\n--fwd-{n}\n"
    )
    .into_bytes();
    out.extend_from_slice(part_raw);
    out.extend_from_slice(format!("\n--fwd-{n}--\n").as_bytes());
    Some(out)
}

/// Sends each message to its recipients through Postfix, on one connection.
pub(crate) async fn deliver(port: u16, mails: &[(Vec<u8>, Vec<&str>)]) {
    let mut s = crate::common::smtp(port).await;
    for (raw, rcpts) in mails {
        s.send("corpus@mailfleet.test", rcpts, raw)
            .await
            .expect("Postfix accepted the message");
    }
    s.quit().await;
}

/// Every message file under a mail root: relative path to (bytes, mtime).
pub(crate) fn message_files(root: &Path) -> BTreeMap<String, (Vec<u8>, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if matches!(
                p.parent()
                    .and_then(|x| x.file_name())
                    .and_then(|x| x.to_str()),
                Some("cur" | "new")
            ) {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                let meta = std::fs::metadata(&p).unwrap();
                out.insert(rel, (std::fs::read(&p).unwrap(), meta.modified().unwrap()));
            }
        }
    }
    out
}

/// Fills the stack's stores with `others` plain corpus messages plus every one with a base64
/// part, every tenth to all five accounts, and forwards of attachments; waits until all are
/// delivered and returns how many message files there are.
pub(crate) async fn fill(stack: &mailfleet_stack::TestStack, others: usize) -> usize {
    let messages = corpus(others);
    let mut mails: Vec<(Vec<u8>, Vec<&str>)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let rcpts = if i % 10 == 0 {
            ACCOUNTS.to_vec()
        } else {
            vec![ACCOUNTS[i % ACCOUNTS.len()]]
        };
        mails.push((m.clone(), rcpts));
    }
    let mut forwarded = 0;
    for (n, m) in messages.iter().enumerate().take(60) {
        if let Some(f) = forward(m, n) {
            mails.push((f, vec![ACCOUNTS[n % ACCOUNTS.len()]]));
            forwarded += 1;
        }
    }
    assert!(forwarded >= 10, "only {forwarded} attachments to forward");
    let expected: usize = mails.iter().map(|(_, r)| r.len()).sum();
    deliver(stack.info.ports.smtp, &mails).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n: usize = mail_roots(stack)
            .iter()
            .map(|r| message_files(r).len())
            .sum();
        if n >= expected {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "{n} of {expected} messages delivered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The stores' mail roots.
pub(crate) fn mail_roots(stack: &mailfleet_stack::TestStack) -> Vec<PathBuf> {
    ["store1", "store2"]
        .iter()
        .map(|s| stack.base().join(s).join("mail"))
        .collect()
}

/// Asserts every message file under the stores' roots is under `restored` with the same
/// bytes and mtime.
pub(crate) fn assert_restored(stack: &mailfleet_stack::TestStack, restored: &Path) {
    for root in mail_roots(stack) {
        for (k, (bytes, mtime)) in message_files(&root) {
            let p = restored.join(&k);
            let back = std::fs::read(&p).unwrap_or_else(|e| panic!("{k}: {e}"));
            assert!(bytes == back, "{k} differs after restore");
            let m = std::fs::metadata(&p).unwrap().modified().unwrap();
            assert_eq!(mtime, m, "{k}: mtime (INTERNALDATE) not restored");
        }
    }
}

/// The stack's config text with these lines added to its `[backup]` table.
pub(crate) fn with_backup(text: &str, lines: &str) -> String {
    assert!(
        text.contains("[backup]\n"),
        "the demo config has a [backup] table"
    );
    text.replacen("[backup]\n", &format!("[backup]\n{lines}"), 1)
}

/// An IMAP session of a demo account.
pub(crate) type Imap = mailfleet_mailclient::imap::Imap;

/// Logs in to a store's IMAP port as alice, as a mail client would.
pub(crate) async fn alice_imap(port: u16) -> Imap {
    crate::common::imap(port, "alice@example.com").await
}

/// Adds flags (`(\\Seen \\Flagged)`) to messages of the selected folder.
pub(crate) async fn add_flags(s: &mut Imap, set: &str, flags: &str) {
    s.store(set, &format!("+FLAGS {flags}")).await.unwrap();
}

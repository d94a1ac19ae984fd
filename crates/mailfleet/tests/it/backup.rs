//! Backups of the demo stores filled with a real corpus (SpamAssassin's public corpus: some
//! messages to many recipients, some attachments forwarded in new messages), restored and
//! compared byte for byte, with flags, mtimes and UIDs; an unchanged store read again costs
//! nothing; a damaged blob is named by the messages it hits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use mailfleet_stack::TestStack;
use mailfleet_stack::demo::DEMO_PASSWORD;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const ACCOUNTS: [&str; 5] = [
    "alice@example.com",
    "bob@example.com",
    "erin@example.com",
    "carol@example.org",
    "dave@example.org",
];

fn corpus_dir() -> PathBuf {
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
fn corpus(others: usize) -> Vec<Vec<u8>> {
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
fn forward(original: &[u8], n: usize) -> Option<Vec<u8>> {
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

fn crlf(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 40);
    let mut prev = 0u8;
    for &b in raw {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

async fn reply(r: &mut BufReader<tokio::net::TcpStream>) -> String {
    loop {
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        assert!(!line.is_empty(), "SMTP connection closed");
        if line.as_bytes().get(3) != Some(&b'-') {
            return line;
        }
    }
}

async fn command(r: &mut BufReader<tokio::net::TcpStream>, cmd: &str, want: char) {
    r.get_mut()
        .write_all(format!("{cmd}\r\n").as_bytes())
        .await
        .unwrap();
    let l = reply(r).await;
    assert!(l.starts_with(want), "{cmd}: {l}");
}

/// Sends each message to its recipients through Postfix, on one connection.
async fn deliver(port: u16, mails: &[(Vec<u8>, Vec<&str>)]) {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut r = BufReader::new(tcp);
    assert!(reply(&mut r).await.starts_with('2'));
    command(&mut r, "EHLO test.mailfleet", '2').await;
    for (raw, rcpts) in mails {
        command(&mut r, "MAIL FROM:<corpus@mailfleet.test>", '2').await;
        for rc in rcpts {
            command(&mut r, &format!("RCPT TO:<{rc}>"), '2').await;
        }
        command(&mut r, "DATA", '3').await;
        let mut body = Vec::new();
        for line in crlf(raw).split_inclusive(|&b| b == b'\n') {
            if line.starts_with(b".") {
                body.push(b'.');
            }
            body.extend_from_slice(line);
        }
        body.extend_from_slice(b".\r\n");
        r.get_mut().write_all(&body).await.unwrap();
        let l = reply(&mut r).await;
        assert!(l.starts_with('2'), "DATA: {l}");
    }
    command(&mut r, "QUIT", '2').await;
}

/// Every message file under a mail root: relative path to (bytes, mtime).
fn message_files(root: &Path) -> BTreeMap<String, (Vec<u8>, std::time::SystemTime)> {
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

/// Every dovecot-uidlist under a mail root: relative folder to (UIDVALIDITY, base -> UID).
fn uidlists(root: &Path) -> BTreeMap<String, (Option<u32>, BTreeMap<String, u32>)> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.file_name().is_some_and(|n| n == "dovecot-uidlist") {
                let u =
                    mailfleet_backup::maildir::parse_uidlist(&std::fs::read_to_string(&p).unwrap());
                let rel = p.parent().unwrap().strip_prefix(root).unwrap();
                out.insert(
                    rel.to_string_lossy().into_owned(),
                    (u.uidvalidity, u.uids.into_iter().collect()),
                );
            }
        }
    }
    out
}

/// Flags, a folder, a move and a subscription for alice, as a client would make them.
async fn use_mailbox(port: u16) {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await.unwrap();
    let mut s = client
        .login("alice@example.com", DEMO_PASSWORD)
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    s.select("INBOX").await.unwrap();
    let _: Vec<_> = s
        .store("1:5", "+FLAGS (\\Seen \\Flagged)")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let _: Vec<_> = s
        .store("6", "+FLAGS ($Important)")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    s.create("Archive").await.unwrap();
    s.subscribe("Archive").await.unwrap();
    s.copy("7:9", "Archive").await.unwrap();
    let _: Vec<_> = s
        .store("7:9", "+FLAGS (\\Deleted)")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let _: Vec<_> = s.expunge().await.unwrap().try_collect().await.unwrap();
    s.logout().await.unwrap();
}

fn backup_json(config: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json", "backup"];
    all.extend_from_slice(args);
    serde_json::from_str(&crate::common::mailfleet_ok(config, &all)).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_corpus_round_trips_byte_for_byte() {
    let stack = TestStack::start().await.expect("stack");
    let config = stack.config_path();
    let messages = corpus(150);
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
    let roots: Vec<PathBuf> = ["store1", "store2"]
        .iter()
        .map(|s| stack.base().join(s).join("mail"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n: usize = roots.iter().map(|r| message_files(r).len()).sum();
        if n >= expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} of {expected} messages delivered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    use_mailbox(stack.info.ports.stores[0].imap).await;

    let first = backup_json(&config, &["run"]);
    assert_eq!(first["accounts"], 7, "{first:#}");
    let total = first["messages"].as_u64().unwrap();
    assert!(total >= expected as u64 - 3, "{first:#}");
    let read = first["read_bytes"].as_u64().unwrap();
    let stored = first["stored"]["stored_bytes"].as_u64().unwrap();
    // Copies to many recipients and forwarded attachments are stored once, and compressed.
    assert!(
        first["stored"]["reused_blobs"].as_u64().unwrap() > 50,
        "{first:#}"
    );
    assert!(read > 2 * stored, "read {read} bytes, stored {stored}");

    let out = stack.base().join("restored");
    crate::common::mailfleet_ok(&config, &["restore", "--to", out.to_str().unwrap()]);
    for root in &roots {
        let original = message_files(root);
        let restored: BTreeMap<_, _> = original
            .keys()
            .filter_map(|k| {
                let p = out.join(k);
                let meta = std::fs::metadata(&p).ok()?;
                Some((k.clone(), (std::fs::read(&p).ok()?, meta.modified().ok()?)))
            })
            .collect();
        assert_eq!(
            original.len(),
            restored.len(),
            "files missing from the restore"
        );
        for (k, (bytes, mtime)) in &original {
            let (rb, rm) = &restored[k];
            assert!(bytes == rb, "{k} differs after restore");
            assert_eq!(mtime, rm, "{k}: mtime (INTERNALDATE) not restored");
        }
        for (folder, (validity, uids)) in uidlists(root) {
            let back = uidlists(&out);
            let (rv, ruids) = back
                .get(&folder)
                .unwrap_or_else(|| panic!("no uidlist for {folder}"));
            assert_eq!(&validity, rv, "{folder}: UIDVALIDITY");
            for (base, uid) in &uids {
                // A file listed in the uidlist but expunged is not in the snapshot.
                let listed = |sub: &str| {
                    let dir = Path::new(&folder).join(sub);
                    original.keys().any(|k| {
                        Path::new(k).parent() == Some(dir.as_path())
                            && k.rsplit('/')
                                .next()
                                .unwrap_or("")
                                .starts_with(base.as_str())
                    })
                };
                if listed("cur") || listed("new") {
                    assert_eq!(ruids.get(base), Some(uid), "{folder} {base}: UID");
                }
            }
        }
    }
    let alice = out.join("example.com/alice/Maildir");
    assert!(
        std::fs::read_to_string(alice.join("subscriptions"))
            .unwrap()
            .contains("Archive")
    );
    assert_eq!(message_files(&alice.join(".Archive")).len(), 3);
    assert!(alice.join(".Archive/maildirfolder").exists());
    assert!(
        std::fs::read_to_string(alice.join("dovecot-keywords"))
            .unwrap()
            .contains("$Important")
    );

    // Unchanged stores: nothing is read again.
    let second = backup_json(&config, &["run"]);
    assert_eq!(second["read_messages"], 0, "{second:#}");
    assert_eq!(second["unchanged_messages"], first["messages"]);
    assert_eq!(second["stored"]["new_blobs"], 0, "{second:#}");
    let listed = backup_json(&config, &["list"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let ok = backup_json(&config, &["verify", "--read-data"]);
    assert_eq!(ok["damaged"].as_array().unwrap().len(), 0, "{ok:#}");

    // One flipped byte in the largest blob: verify names the damaged messages, exit 2.
    let repo = stack.base().join("data/backup/blobs");
    let mut blobs: Vec<PathBuf> = std::fs::read_dir(&repo)
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .map(|e| e.path())
        .collect();
    blobs.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let victim = blobs.last().unwrap();
    let mut bytes = std::fs::read(victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(victim, bytes).unwrap();
    let out = crate::common::mailfleet(&[
        "--config",
        config.to_str().unwrap(),
        "--json",
        "backup",
        "verify",
        "--read-data",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let bad: Value = serde_json::from_slice(&out.stdout).unwrap();
    let damaged = bad["damaged"].as_array().unwrap();
    assert!(!damaged.is_empty());
    assert!(
        damaged
            .iter()
            .all(|d| d.as_str().unwrap().contains("@example.")),
        "{damaged:?}"
    );
}

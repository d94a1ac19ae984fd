//! Backups of the demo stores filled with a real corpus (SpamAssassin's public corpus: some
//! messages to many recipients, some attachments forwarded in new messages), restored and
//! compared byte for byte, with flags, mtimes and UIDs; an unchanged store read again costs
//! nothing; a damaged blob is named by the messages it hits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mailfleet_stack::TestStack;
use serde_json::Value;

use crate::corpus::{add_flags, alice_imap, fill, mail_roots, message_files};

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
    let mut s = alice_imap(port).await;
    s.select("INBOX").await.unwrap();
    add_flags(&mut s, "1:5", "(\\Seen \\Flagged)").await;
    add_flags(&mut s, "6", "($Important)").await;
    s.create("Archive").await.unwrap();
    s.subscribe("Archive").await.unwrap();
    s.copy("7:9", "Archive").await.unwrap();
    add_flags(&mut s, "7:9", "(\\Deleted)").await;
    s.expunge().await.unwrap();
    s.logout().await;
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
    let expected = fill(&stack, 150).await;
    let roots = mail_roots(&stack);
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

    // One flipped byte in the largest pack: verify names the damaged messages, exit 4.
    let repo = stack.base().join("data/backup/packs");
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
    assert_eq!(out.status.code(), Some(4), "a damaged repository");
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

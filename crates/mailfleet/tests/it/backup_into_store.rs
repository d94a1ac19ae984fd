//! Restore into the live store over IMAP: messages deleted after the backup come back with
//! their flags and internal dates, and a second run appends nothing.

use std::collections::BTreeMap;

use mailfleet_stack::TestStack;
use serde_json::Value;

use crate::corpus::{add_flags, fill};

type Session = crate::corpus::Imap;

/// Every message of a folder: body hash to (flags without \Recent, INTERNALDATE).
async fn contents(s: &mut Session, folder: &str) -> BTreeMap<String, (Vec<String>, String)> {
    let m = s.select(folder).await.unwrap();
    if m.exists == 0 {
        return BTreeMap::new();
    }
    let fetched = s
        .fetch("1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
        .await
        .unwrap();
    fetched
        .iter()
        .map(|f| {
            let mut flags: Vec<String> = f
                .flags()
                .map(|fl| format!("{fl:?}"))
                .filter(|fl| fl != "Recent")
                .collect();
            flags.sort();
            let date = f.internal_date().unwrap().to_rfc3339();
            let hash = mailfleet_backup::BlobId::of(f.body().unwrap()).hex();
            (hash, (flags, date))
        })
        .collect()
}

async fn flag_and_file(s: &mut Session) {
    s.select("INBOX").await.unwrap();
    add_flags(s, "1:3", "(\\Seen \\Answered)").await;
    add_flags(s, "4", "($Important \\Flagged)").await;
    s.create("Projects").await.unwrap();
    s.copy("5:7", "Projects").await.unwrap();
}

async fn delete_all(s: &mut Session, folder: &str) {
    s.select(folder).await.unwrap();
    add_flags(s, "1:*", "(\\Deleted)").await;
    s.expunge().await.unwrap();
}

fn restore(config: &std::path::Path) -> Value {
    let out = crate::common::mailfleet_ok(
        config,
        &[
            "--json",
            "restore",
            "--account",
            "alice@example.com",
            "--into-store",
        ],
    );
    serde_json::from_str(&out).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_mail_comes_back_over_imap_once() {
    let stack = TestStack::start().await.expect("stack");
    let config = stack.config_path();
    fill(&stack, 20).await;
    let port = stack.info.ports.stores[0].imap;
    let mut s = crate::corpus::alice_imap(port).await;
    flag_and_file(&mut s).await;
    let inbox = contents(&mut s, "INBOX").await;
    let projects = contents(&mut s, "Projects").await;
    assert!(inbox.len() >= 7 && projects.len() == 3);
    crate::common::mailfleet_ok(
        &config,
        &["backup", "run", "--account", "alice@example.com"],
    );

    // The user deletes everything, including the folder's mail.
    delete_all(&mut s, "INBOX").await;
    delete_all(&mut s, "Projects").await;
    // Dovecot disconnects a client whose selected mailbox is deleted.
    s.select("INBOX").await.unwrap();
    s.delete_mailbox("Projects").await.unwrap();

    let first = restore(&config);
    assert_eq!(
        first["appended"].as_u64().unwrap(),
        (inbox.len() + projects.len()) as u64,
        "{first:#}"
    );
    assert_eq!(first["skipped"], 0, "{first:#}");
    assert_eq!(first["created_folders"], 1, "{first:#}");
    assert_eq!(
        contents(&mut s, "INBOX").await,
        inbox,
        "INBOX after restore"
    );
    assert_eq!(
        contents(&mut s, "Projects").await,
        projects,
        "Projects after restore"
    );

    // Again: everything is already there.
    let second = restore(&config);
    assert_eq!(second["appended"], 0, "{second:#}");
    assert_eq!(
        second["skipped"].as_u64().unwrap(),
        (inbox.len() + projects.len()) as u64
    );
    assert_eq!(contents(&mut s, "INBOX").await.len(), inbox.len());
    s.logout().await;
}

//! A damaged compression dictionary costs only the blobs compressed with it: restore and
//! verify name it for those messages, and every other message still restores byte-identical.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeMap;
use std::path::Path;

use mailfleet_backup::repo::Repository;
use mailfleet_backup::restore::{Filter, account_dir, to_dir};
use mailfleet_backup::run::{Source, run};
use mailfleet_backup::target::DirTarget;

/// A message with a header block as a store's LMTP leaves it, big enough to sample.
fn message(i: usize) -> String {
    let received = (0..4)
        .map(|hop| {
            format!(
                "Received: from mx{hop}.example.net (mx{hop}.example.net [192.0.2.{hop}])\n\tby \
                 store1.example.com (Postfix) with ESMTPS id {i:06}{hop}\n\tfor \
                 <alice@example.com>; Tue, 1 Dec 2026 10:{:02}:00 +0000\n",
                i % 60
            )
        })
        .collect::<String>();
    let body = format!("line {i} of a body long enough to be a part of its own\n").repeat(30);
    format!(
        "Return-Path: <sender{i}@example.net>\n{received}From: Sender {i} <sender{i}@example.net>\n\
         To: alice@example.com\nSubject: report number {i}\nMessage-ID: <{i}@example.net>\n\
         Date: Tue, 1 Dec 2026 10:00:00 +0000\nMIME-Version: 1.0\n\
         Content-Type: text/plain; charset=utf-8\n\n{body}"
    )
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir.join("cur"))
        .unwrap()
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

#[test]
fn a_damaged_dictionary_fails_only_its_blobs_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let md = tmp.path().join("Maildir");
    for d in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(md.join(d)).unwrap();
    }
    let write = |i: usize| {
        let name = format!("17000{i:05}.M1P1.store1:2,S");
        std::fs::write(md.join("cur").join(name), message(i)).unwrap();
    };
    let sources = [Source {
        server: "store1".into(),
        address: "alice@example.com".into(),
        maildir: md.clone(),
    }];
    let repo_dir = tmp.path().join("repo");
    let open = || Repository::open_or_init(Box::new(DirTarget::new(&repo_dir).unwrap()), None);

    // The first run trains once its mail is stored, so its blobs need no dictionary;
    // the second run's new mail is compressed with what the first trained.
    (0..80).for_each(write);
    run(&open().unwrap(), &sources, &mut |_| {}).unwrap();
    let dicts: Vec<_> = std::fs::read_dir(repo_dir.join("dicts"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(!dicts.is_empty(), "the first run trained no dictionary");
    (80..160).for_each(write);
    run(&open().unwrap(), &sources, &mut |_| {}).unwrap();
    for d in &dicts {
        let mut bytes = std::fs::read(d).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(d, &bytes).unwrap();
    }

    let repo = open().unwrap();
    let latest = repo.snapshots().unwrap().pop().unwrap();
    let out = tmp.path().join("out");
    let report = to_dir(&repo, &latest, &Filter::default(), &out).unwrap();
    assert_eq!(report.failed.len(), 80, "{:?}", report.failed);
    for f in &report.failed {
        assert!(f.error.contains("dictionary"), "{f:?}");
        let n: usize = f.file[5..10].parse().unwrap();
        assert!(n >= 80, "{} needed no dictionary: {f:?}", f.file);
    }
    let restored = files(&account_dir(&out, "alice@example.com"));
    let stored = files(&md);
    assert_eq!(restored.len(), 80);
    for (name, bytes) in &restored {
        assert_eq!(Some(bytes), stored.get(name), "{name} differs");
    }

    let checked = mailfleet_backup::verify::verify(&repo, true).unwrap();
    assert!(!checked.ok());
    assert!(
        checked.damaged.iter().any(|d| d.contains("dictionary")),
        "{:?}",
        checked.damaged
    );
    // The first snapshot needs no dictionary at all.
    let first = repo.snapshots().unwrap().remove(0);
    let out = tmp.path().join("first");
    let report = to_dir(&repo, &first, &Filter::default(), &out).unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(files(&account_dir(&out, "alice@example.com")).len(), 80);
}

//! A repository written before compression dictionaries (format 2) still restores byte for
//! byte, plain and encrypted; backing up into it trains dictionaries, raises it to the current format,
//! and every snapshot, old and new, still restores.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mailfleet_backup::crypto::Keys;
use mailfleet_backup::repo::Repository;
use mailfleet_backup::restore::{Filter, to_dir};
use mailfleet_backup::run::{Source, run};
use mailfleet_backup::target::DirTarget;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format2")
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Message files under a tree of Maildirs, by path relative to it.
fn messages(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if p
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|n| n == "cur" || n == "new")
            {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn restored(repo: &Repository, snapshot: usize, out: &Path) -> BTreeMap<String, Vec<u8>> {
    let snapshots = repo.snapshots().unwrap();
    let report = to_dir(repo, &snapshots[snapshot], &Filter::default(), out).unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    messages(out)
}

fn format(repo_dir: &Path) -> u64 {
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo_dir.join("config")).unwrap()).unwrap();
    config["format"].as_u64().unwrap()
}

fn old_repository_reads_and_upgrades(name: &str, keys: impl Fn() -> Option<Keys>) {
    let tmp = tempfile::tempdir().unwrap();
    let repo_dir = tmp.path().join("repo");
    copy(&fixture().join(name), &repo_dir);
    let store = tmp.path().join("store");
    copy(&fixture().join("maildirs"), &store);
    let original = messages(&store);
    assert_eq!(original.len(), 42);
    assert_eq!(format(&repo_dir), 2);

    let repo = Repository::open(Box::new(DirTarget::new(&repo_dir).unwrap()), keys()).unwrap();
    assert_eq!(restored(&repo, 0, &tmp.path().join("out0")), original);

    // New mail, enough for the run to train its dictionaries.
    let mut sources = Vec::new();
    for (address, dir) in [
        ("alice@example.com", "example.com/alice/Maildir"),
        ("bob@example.org", "example.org/bob/Maildir"),
    ] {
        let md = store.join(dir);
        for d in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(md.join(d)).unwrap();
        }
        for i in 0..150 {
            let raw = format!(
                "Return-Path: <news@lists.example.net>\nDelivered-To: {address}\n\
                 Received: from mx.example.net (mx.example.net [192.0.2.9])\n\tby store1 with LMTP id {i}\n\
                 From: Lists <news@lists.example.net>\nTo: {address}\nSubject: issue {i} of the weekly news\n\
                 Message-ID: <{i}.{address}@lists.example.net>\nList-Id: <news.lists.example.net>\n\n{}",
                format!("Item {i}: the weekly digest of what happened on the list this week.\n")
                    .repeat(30)
            );
            std::fs::write(md.join(format!("cur/18000{i:05}.M1P1.store1:2,S")), raw).unwrap();
        }
        sources.push(Source {
            server: "store1".into(),
            address: address.into(),
            maildir: md,
        });
    }
    let (_, report) = run(&repo, &sources, &mut |_| {}).unwrap();
    assert_eq!(report.messages, 342);
    assert_eq!(
        format(&repo_dir),
        u64::from(mailfleet_backup::repo::FORMAT),
        "storing a dictionary or a group raises the format"
    );
    let dicts = std::fs::read_dir(repo_dir.join("dicts")).unwrap().count();
    assert_eq!(dicts, 2, "a header and a text dictionary");

    // A later run compresses with them; everything restores, reopened from scratch.
    for i in 0..50 {
        let raw = format!(
            "From: Lists <news@lists.example.net>\nSubject: late issue {i}\n\n{}",
            format!("Item {i}: the weekly digest of what happened on the list.\n").repeat(30)
        );
        std::fs::write(
            sources[0]
                .maildir
                .join(format!("cur/19000{i:05}.M1P1.store1:2,S")),
            raw,
        )
        .unwrap();
    }
    let (_, later) = run(&repo, &sources, &mut |_| {}).unwrap();
    assert_eq!(later.read_messages, 50);
    drop(repo);
    let repo = Repository::open(Box::new(DirTarget::new(&repo_dir).unwrap()), keys()).unwrap();
    assert_eq!(restored(&repo, 0, &tmp.path().join("out1")), original);
    assert_eq!(
        restored(&repo, 2, &tmp.path().join("out2")),
        messages(&store)
    );
}

#[test]
fn a_format_2_repository_reads_and_is_upgraded() {
    old_repository_reads_and_upgrades("repo-plain", || None);
}

#[test]
fn an_encrypted_format_2_repository_reads_and_is_upgraded() {
    old_repository_reads_and_upgrades("repo-encrypted", || {
        Some(Keys::load(&fixture().join("format2.key")).unwrap())
    });
}

//! A damaged repository (broken config, truncated snapshot, index or pack, leftovers of a
//! killed run) gets errors that name the object, never a panic; what is intact still reads.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::{Path, PathBuf};

use mailfleet_backup::error::BackupError;
use mailfleet_backup::repo::Repository;
use mailfleet_backup::run::{Source, run};
use mailfleet_backup::target::DirTarget;

fn maildir(root: &Path, messages: usize) -> PathBuf {
    let md = root.join("example.com/alice/Maildir");
    for d in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(md.join(d)).unwrap();
    }
    for i in 0..messages {
        let body = format!("line {i} of a body long enough to be a part of its own\n").repeat(40);
        let raw =
            format!("From: a@example.com\nSubject: message {i}\nMessage-ID: <{i}@t>\n\n{body}");
        std::fs::write(md.join(format!("cur/17000000{i:02}.M1P1.host:2,S")), raw).unwrap();
    }
    md
}

fn open(dir: &Path) -> Result<Repository, BackupError> {
    Repository::open_or_init(Box::new(DirTarget::new(dir).unwrap()), None)
}

fn backed_up(tmp: &Path) -> PathBuf {
    let md = maildir(&tmp.join("store"), 12);
    let repo_dir = tmp.join("repo");
    let repo = open(&repo_dir).unwrap();
    let source = Source {
        server: "store1".into(),
        address: "alice@example.com".into(),
        maildir: md,
    };
    run(&repo, &[source], &mut |_| {}).unwrap();
    repo_dir
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .flat_map(|e| {
            if e.path().is_dir() {
                files(&e.path())
            } else {
                vec![e.path()]
            }
        })
        .collect();
    out.sort();
    out
}

fn truncate(path: &Path, keep: usize) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..keep.min(bytes.len())]).unwrap();
}

#[test]
fn a_broken_config_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = backed_up(tmp.path());
    std::fs::write(dir.join("config"), "{\"format\": 2, \"id\":").unwrap();
    let e = open(&dir).err().expect("refused").to_string();
    assert!(e.contains("config") && e.contains("damaged"), "{e}");
    std::fs::write(
        dir.join("config"),
        "{\"format\": 9, \"id\": \"x\", \"created\": \"2026-11-24T00:00:00Z\"}",
    )
    .unwrap();
    let e = open(&dir).err().expect("refused").to_string();
    assert!(e.contains("format 9"), "{e}");
}

#[test]
fn a_truncated_snapshot_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = backed_up(tmp.path());
    let snap = files(&dir.join("snapshots")).remove(0);
    truncate(&snap, 20);
    let repo = open(&dir).unwrap();
    let listing = repo.snapshot_listing().unwrap();
    assert!(listing.intact.is_empty());
    assert_eq!(listing.damaged.len(), 1);
    let d = &listing.damaged[0];
    assert!(
        snap.ends_with(&d.id) && d.error.contains("snapshots/"),
        "{d:?}"
    );
    // Asked for by name, it is damaged, not missing.
    let e = repo.snapshot(&d.id).unwrap_err();
    assert!(matches!(e, BackupError::Corrupt(_)), "{e}");
}

#[test]
fn a_truncated_pack_fails_verify_naming_the_account() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = backed_up(tmp.path());
    let pack = files(&dir.join("packs")).remove(0);
    let len = std::fs::metadata(&pack).unwrap().len() as usize;
    truncate(&pack, len / 2);
    let repo = open(&dir).unwrap();
    let report = mailfleet_backup::verify::verify(&repo, true).unwrap();
    assert!(!report.ok());
    assert!(
        report
            .damaged
            .iter()
            .all(|d| d.contains("alice@example.com")),
        "{:?}",
        report.damaged
    );
    assert!(
        report
            .damaged
            .iter()
            .any(|d| d.contains("shorter than its index says")),
        "{:?}",
        report.damaged
    );
}

#[test]
fn a_damaged_index_is_reported_and_blocks_prune() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = backed_up(tmp.path());
    let index = files(&dir.join("index")).remove(0);
    std::fs::write(&index, b"MFB1 not zstd at all").unwrap();
    let repo = open(&dir).unwrap();
    assert_eq!(repo.damaged_indexes().len(), 1);
    let report = mailfleet_backup::verify::verify(&repo, false).unwrap();
    assert!(
        report.damaged.iter().any(|d| d.starts_with("index: ")),
        "{:?}",
        report.damaged
    );
    let e = mailfleet_backup::maintenance::prune(&repo, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("prune refused"), "{e}");
    // The pack is still there for whoever repairs the index.
    assert_eq!(files(&dir.join("packs")).len(), 1);
}

#[test]
fn leftovers_of_a_killed_run_are_ignored_then_pruned() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = backed_up(tmp.path());
    // A pack written without its index, and a half-written temporary file.
    std::fs::create_dir_all(dir.join("packs/ff")).unwrap();
    std::fs::write(dir.join("packs/ff/ff00"), b"MFB1 orphan").unwrap();
    std::fs::write(dir.join("tmp/snapshots_x.1.ThreadId(1)"), b"{\"id\"").unwrap();
    let repo = open(&dir).unwrap();
    assert!(mailfleet_backup::verify::verify(&repo, true).unwrap().ok());
    let pruned = mailfleet_backup::maintenance::prune(&repo, false).unwrap();
    assert_eq!(pruned.packs_deleted, 1);
    assert_eq!(pruned.temporary_files, 1);
    assert!(!dir.join("packs/ff/ff00").exists());
    assert!(mailfleet_backup::verify::verify(&repo, true).unwrap().ok());
}

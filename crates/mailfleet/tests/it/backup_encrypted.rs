//! An encrypted repository: nothing readable on the target, dedup still works, restores are
//! byte-identical, and a missing or wrong key is refused with a message that says so.

use std::path::{Path, PathBuf};

use mailfleet_stack::TestStack;
use serde_json::Value;

use crate::corpus::{assert_restored, fill, with_backup};

fn write_config(stack: &TestStack, name: &str, lines: &str) -> PathBuf {
    let path = stack.base().join(name);
    let text = std::fs::read_to_string(stack.config_path()).unwrap();
    std::fs::write(&path, with_backup(&text, lines)).unwrap();
    path
}

fn keygen(stack: &TestStack, name: &str) -> PathBuf {
    let key = stack.base().join(name);
    let out = crate::common::mailfleet(&["backup", "keygen", key.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    key
}

fn objects(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                dirs.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

fn failure(config: &Path, args: &[&str]) -> String {
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = crate::common::mailfleet(&all);
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_encrypted_repository_round_trips_and_refuses_wrong_keys() {
    let stack = TestStack::start().await.expect("stack");
    fill(&stack, 30).await;
    let repo = stack.base().join("encrypted-repo");
    let key = keygen(&stack, "backup.key");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions())
            & 0o777,
        0o600
    );
    let again = crate::common::mailfleet(&["backup", "keygen", key.to_str().unwrap()]);
    assert!(!again.status.success(), "an existing key is overwritten");
    let config = write_config(
        &stack,
        "enc.toml",
        &format!("repository = {repo:?}\nkey_file = {key:?}\n"),
    );

    let first: Value = serde_json::from_str(&crate::common::mailfleet_ok(
        &config,
        &["--json", "backup", "run"],
    ))
    .unwrap();
    assert!(
        first["stored"]["reused_blobs"].as_u64().unwrap() > 20,
        "dedup works on encrypted blobs: {first:#}"
    );
    // Every object on the target is sealed (a pack starts with its first blob's object);
    // indexes, snapshots and the trained compression dictionaries too.
    let packs = objects(&repo.join("packs"));
    assert!(!packs.is_empty());
    let dicts = objects(&repo.join("dicts"));
    assert!(!dicts.is_empty(), "the first backup trained no dictionary");
    let others = [
        objects(&repo.join("index")),
        objects(&repo.join("snapshots")),
        dicts,
    ]
    .concat();
    for f in packs.iter().chain(others.iter()) {
        assert!(
            std::fs::read(f).unwrap().starts_with(b"MFE1"),
            "{} is not encrypted",
            f.display()
        );
    }
    let config_text = std::fs::read_to_string(repo.join("config")).unwrap();
    assert!(config_text.contains("xchacha20poly1305"), "{config_text}");
    let ok: Value = serde_json::from_str(&crate::common::mailfleet_ok(
        &config,
        &["--json", "backup", "verify", "--read-data"],
    ))
    .unwrap();
    assert!(ok["damaged"].as_array().unwrap().is_empty(), "{ok:#}");
    let out = stack.base().join("restored");
    crate::common::mailfleet_ok(&config, &["restore", "--to", out.to_str().unwrap()]);
    assert_restored(&stack, &out);

    // No key, another key, a key for a plain repository: refused, saying why.
    let no_key = write_config(&stack, "nokey.toml", &format!("repository = {repo:?}\n"));
    let e = failure(&no_key, &["backup", "list"]);
    assert!(e.contains("is encrypted") && e.contains("key_file"), "{e}");
    let other = keygen(&stack, "other.key");
    let wrong = write_config(
        &stack,
        "wrong.toml",
        &format!("repository = {repo:?}\nkey_file = {other:?}\n"),
    );
    let e = failure(&wrong, &["backup", "list"]);
    assert!(e.contains("not this repository's key"), "{e}");
    let plain = stack.base().join("data/backup");
    crate::common::mailfleet_ok(&stack.config_path(), &["backup", "run"]);
    let mixed = write_config(
        &stack,
        "mixed.toml",
        &format!("repository = {plain:?}\nkey_file = {key:?}\n"),
    );
    let e = failure(&mixed, &["backup", "run"]);
    assert!(e.contains("not encrypted"), "{e}");
    let junk = stack.base().join("junk.key");
    std::fs::write(&junk, "hunter2\n").unwrap();
    let bad = write_config(
        &stack,
        "junk.toml",
        &format!("repository = {repo:?}\nkey_file = {junk:?}\n"),
    );
    let e = failure(&bad, &["backup", "list"]);
    assert!(e.contains("key_file") && e.contains("64 hex digits"), "{e}");
}

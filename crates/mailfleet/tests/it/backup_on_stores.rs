//! `backup run` on a fleet whose stores are reached over SSH: mailfleet runs on each store
//! through its sshd (`backup run --here --server STORE`), writes to the shared repository
//! and reports back; a restore of one account is byte-identical.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Every file under `dir`, relative path to bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p
                .parent()
                .is_some_and(|d| d.ends_with("cur") || d.ends_with("new"))
            {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn each_ssh_store_is_backed_up_on_itself_and_a_restore_is_identical() {
    let stack = mailfleet_stack::TestStack::start().await.expect("stack");
    let p = &stack.info.ports;
    for i in 0..3 {
        let tag = crate::common::unique_tag(&format!("onstore-{i}"));
        crate::common::send(p.smtp, "bob@example.com", "alice@example.com", &tag).await;
        crate::common::send(p.smtp, "bob@example.com", "carol@example.org", &tag).await;
        crate::common::wait_for_mail(
            p.stores[0].imap,
            "alice@example.com",
            &tag,
            std::time::Duration::from_secs(30),
        )
        .await;
    }
    let text = std::fs::read_to_string(stack.config_path()).unwrap();
    assert!(
        text.contains("run_on_stores = false"),
        "the demo config changed"
    );
    let config = stack.base().join("on-stores.toml");
    std::fs::write(
        &config,
        text.replace("run_on_stores = false", "run_on_stores = true"),
    )
    .unwrap();

    let out = crate::common::mailfleet_ok(&config, &["--json", "backup", "run"]);
    let runs: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(runs.len(), 2, "{runs:#?}");
    for (run, (store, last)) in runs.iter().zip([("store1", 31), ("store2", 32)]) {
        assert_eq!(run["stores"], serde_json::json!([store]), "{run:#}");
        assert_eq!(run["result"], "ok", "{run:#}");
        let on = run["ran_on"].as_str().unwrap();
        assert!(
            on.starts_with(&format!("ssh root@127.0.0.{last}:")),
            "{run:#}"
        );
        assert!(run["accounts"].as_u64().unwrap() >= 3, "{run:#}");
    }
    // The monitor's backup check reads the status each store's run wrote.
    let status =
        std::fs::read_to_string(stack.base().join("data/backup-status-store1.json")).unwrap();
    assert!(status.contains("\"ok\""), "{status}");

    // A second run reads nothing again: each account's parent is its own store's snapshot.
    let out = crate::common::mailfleet_ok(&config, &["--json", "backup", "run"]);
    let again: Vec<Value> = serde_json::from_str(&out).unwrap();
    for run in &again {
        assert_eq!(run["read_messages"], 0, "{run:#}");
    }

    let to = stack.base().join("restored");
    crate::common::mailfleet_ok(
        &config,
        &[
            "restore",
            "--account",
            "alice@example.com",
            "--to",
            to.to_str().unwrap(),
        ],
    );
    let rel = Path::new("example.com/alice/Maildir");
    let original = files(&stack.base().join("store1/mail").join(rel));
    let restored = files(&to.join(rel));
    assert!(original.len() >= 3, "{:?}", original.keys());
    assert_eq!(
        original.keys().collect::<Vec<_>>(),
        restored.keys().collect::<Vec<_>>()
    );
    assert!(original == restored, "alice's restored messages differ");
}

//! Snapshot maintenance on the demo stores: diff between snapshots, restore as of a time,
//! forget by policy, prune (refused while a backup holds its lock), all verified.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mailfleet_stack::TestStack;
use serde_json::Value;

fn json(config: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&crate::common::mailfleet_ok(config, &all)).unwrap()
}

fn inbox(stack: &TestStack) -> PathBuf {
    stack.base().join("store1/mail/example.com/alice/Maildir")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    ["new", "cur"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(dir.join(d))
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.path())
        .collect()
}

#[tokio::test]
async fn diff_restore_at_forget_and_prune() {
    let stack = TestStack::start().await.expect("stack");
    let config = stack.config_path();
    let smtp = stack.info.ports.smtp;
    let imap = stack.info.ports.stores[0].imap;
    for n in 1..=3 {
        let tag = format!("maintenance {n}");
        crate::common::send(smtp, "bob@example.com", "alice@example.com", &tag).await;
        let got =
            crate::common::wait_for_mail(imap, "alice@example.com", &tag, Duration::from_secs(30))
                .await;
        assert_eq!(got.len(), 1);
    }
    let first = json(&config, &["backup", "run"]);
    let first_id = first["snapshot"].as_str().unwrap().to_string();
    let before: Vec<PathBuf> = files(&inbox(&stack));
    assert_eq!(before.len(), 3);

    // A client reads one message, deletes another; a new one arrives.
    let mut sorted = before.clone();
    sorted.sort();
    let read = &sorted[0];
    let name = read.file_name().unwrap().to_string_lossy().to_string();
    std::fs::rename(
        read,
        inbox(&stack)
            .join("cur")
            .join(format!("{}:2,S", name.split(':').next().unwrap())),
    )
    .unwrap();
    std::fs::remove_file(&sorted[1]).unwrap();
    crate::common::send(
        smtp,
        "bob@example.com",
        "alice@example.com",
        "maintenance 4",
    )
    .await;
    crate::common::wait_for_mail(
        imap,
        "alice@example.com",
        "maintenance 4",
        Duration::from_secs(30),
    )
    .await;
    // Snapshot times have one-second resolution in --at: keep them apart.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = json(&config, &["backup", "run"]);
    let second_id = second["snapshot"].as_str().unwrap().to_string();

    let d = json(&config, &["backup", "diff", &first_id, &second_id]);
    let alice = d
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["address"] == "alice@example.com")
        .unwrap_or_else(|| panic!("{d:#}"));
    assert_eq!(alice["added"].as_array().unwrap().len(), 1, "{alice:#}");
    assert_eq!(alice["removed"].as_array().unwrap().len(), 1, "{alice:#}");
    assert_eq!(
        alice["flags_changed"].as_array().unwrap().len(),
        1,
        "{alice:#}"
    );

    // As of the first snapshot's time: the three original messages, the deleted one included.
    let snaps = json(&config, &["backup", "list"]);
    let t1 = snaps[0]["time"].as_str().unwrap().to_string();
    let out = stack.base().join("as-of");
    crate::common::mailfleet_ok(
        &config,
        &[
            "restore",
            "--account",
            "alice@example.com",
            "--at",
            &t1,
            "--to",
            out.to_str().unwrap(),
        ],
    );
    let restored = files(&out.join("example.com/alice/Maildir"));
    assert_eq!(restored.len(), 3, "{restored:?}");
    let rel = sorted[1].strip_prefix(inbox(&stack)).unwrap();
    let deleted = std::fs::read_to_string(out.join("example.com/alice/Maildir").join(rel)).unwrap();
    assert!(
        deleted.contains("maintenance"),
        "the deleted message is back"
    );

    // A backup holding its lock: prune refuses and deletes nothing.
    let lock = stack.base().join("data/backup/locks/shared-test");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    std::fs::write(
        &lock,
        format!(
            "{{\"kind\":\"shared\",\"host\":{:?},\"pid\":{},\"time\":{:?}}}",
            host.trim(),
            std::process::id(),
            chrono::Utc::now().to_rfc3339()
        ),
    )
    .unwrap();
    let refused =
        crate::common::mailfleet(&["--config", config.to_str().unwrap(), "backup", "prune"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("a backup is running"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    std::fs::remove_file(&lock).unwrap();

    // Keep only the newest: the first snapshot goes, and with prune the deleted message's data.
    let plan = json(&config, &["backup", "forget", "--keep-last", "1"]);
    assert_eq!(plan["forget"], serde_json::json!([first_id]));
    let pruned = json(&config, &["backup", "prune"]);
    assert!(pruned["deleted"].as_u64().unwrap() >= 2, "{pruned:#}");
    let v = json(&config, &["backup", "verify", "--read-data"]);
    assert_eq!(v["snapshots"], 1);
    assert!(v["damaged"].as_array().unwrap().is_empty(), "{v:#}");
    let again = json(&config, &["backup", "prune"]);
    assert_eq!(again["deleted"], 0, "{again:#}");
    let refused =
        crate::common::mailfleet(&["--config", config.to_str().unwrap(), "backup", "forget"]);
    assert!(
        !refused.status.success(),
        "forget without a policy must refuse"
    );
}

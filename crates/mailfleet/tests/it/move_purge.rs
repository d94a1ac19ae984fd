//! The old copy a move leaves on its source: its user can no longer log in there, `move
//! purge` keeps it during the grace period, then deletes it, except a copy written to after
//! the switch: that one is kept and the late write reported.

use mailfleet_stack::TestStack;
use mailfleet_stack::demo::DEMO_PASSWORD;
use serde_json::Value;

use crate::common::{clock, local, mailfleet};

fn save(stack: &TestStack, store: &str, user: &str, n: usize) {
    for i in 0..n {
        let message = format!(
            "From: <carol@example.org>\r\nTo: <{user}>\r\nSubject: purge {i}\r\nMessage-ID: <purge-{i}-{user}-{n}>\r\n\r\nbody\r\n"
        );
        crate::common::doveadm_save(stack, store, user, "INBOX", &message);
    }
}

fn run(config: &str, args: &[&str]) -> (Option<i32>, Value) {
    let mut all = vec!["--config", config, "--json"];
    all.extend_from_slice(args);
    let out = mailfleet(&all);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "{args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), v)
}

#[tokio::test(flavor = "multi_thread")]
async fn old_copies_are_kept_for_the_grace_period_then_deleted_unless_written_late() {
    let stack = TestStack::start().await.expect("stack");
    let path = stack.config_path();
    let c = path.to_str().unwrap();
    save(&stack, "store1", "alice@example.com", 5);
    save(&stack, "store1", "bob@example.com", 5);
    let (code, moved) = run(
        c,
        &[
            "move",
            "alice@example.com",
            "bob@example.com",
            "--to",
            "store2",
        ],
    );
    assert_eq!(code, Some(0), "{moved:#}");

    // The old copy is out of its user's reach: no login on the old store.
    let store1_imap = stack.info.ports.stores[0].imap;
    let login = mailfleet_mailclient::imap::Imap::login(
        &local(store1_imap),
        "alice@example.com",
        DEMO_PASSWORD,
        &clock(),
    )
    .await;
    assert!(login.is_err(), "alice still logs in on store1");

    // Within the grace period nothing is deleted.
    let (code, none) = run(c, &["move", "purge", "--older-than", "1h"]);
    assert_eq!((code, none), (Some(0), serde_json::json!([])));

    // Something writes to bob's old copy after the switch.
    save(&stack, "store1", "bob@example.com", 1);
    let (code, purged) = run(c, &["move", "purge", "--older-than", "0s"]);
    assert_eq!(
        code,
        Some(1),
        "a kept copy is a problem to look at: {purged:#}"
    );
    let of = |a: &str| {
        purged
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["address"] == a)
            .cloned()
            .unwrap_or_else(|| panic!("{a} not in {purged:#}"))
    };
    assert_eq!(of("alice@example.com")["deleted"], true, "{purged:#}");
    let bob = of("bob@example.com");
    assert_eq!(bob["deleted"], false);
    assert!(
        bob["note"].as_str().unwrap().contains("LATE WRITE"),
        "{bob:#}"
    );
    let mail = stack.base().join("store1").join("mail").join("example.com");
    assert!(
        !mail.join("alice").exists(),
        "alice's old copy is still there"
    );
    assert!(mail.join("bob").exists(), "bob's old copy was deleted");
    // Purged once: a second purge has only bob's kept copy to report.
    let (_, again) = run(c, &["move", "purge", "--older-than", "0s"]);
    assert_eq!(again.as_array().unwrap().len(), 1, "{again:#}");
    // alice's mailbox lives on, on store2.
    let store2_imap = stack.info.ports.stores[1].imap;
    let found = crate::common::imap_find(store2_imap, "alice@example.com", "purge").await;
    assert_eq!(found.len(), 5);
}

//! A copy that differs stops the switch: a message deleted on the target after a copy pass is
//! named (by the next pass, whose `doveadm backup -R` finds the target's INBOX changed behind
//! its back and cannot recreate it, or else by the verify), the account stays on its source,
//! unlocked, the move is recorded as failed, and its mail still goes there.

use std::time::Duration;

use mailfleet_core::Address;
use mailfleet_stack::TestStack;

use crate::common::{doveadm_save, mailfleet, send, wait_for_mail};

const D: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn a_message_deleted_on_the_target_before_the_switch_stops_it() {
    let stack = TestStack::start().await.expect("stack");
    let config = stack.config().unwrap();
    let path = stack.config_path();
    let c = path.to_str().unwrap();
    for i in 0..5 {
        doveadm_save(
            &stack,
            "store1",
            "alice@example.com",
            "INBOX",
            &format!("Subject: verify {i}\r\nMessage-ID: <verify-{i}@test>\r\n\r\nbody\r\n"),
        );
    }
    let reach = mailfleet_remote::Reach::new();
    let alice = Address::parse("alice@example.com").unwrap();
    let (store1, store2) = (
        config.fleet.server("store1").unwrap(),
        config.fleet.server("store2").unwrap(),
    );
    // A move that copied once and then died: its journal entry, as `move` records it.
    mailfleet_move::provision(&reach, store2, &alice, D)
        .await
        .unwrap();
    let first = mailfleet_move::pass(&reach, store1, store2, &alice, "", D)
        .await
        .unwrap();
    let journal = mailfleet_move::Journal::open(&config.data_dir).unwrap();
    let batch = journal
        .begin_batch("move alice@example.com --to store2")
        .unwrap();
    let entry = journal
        .plan(batch, "alice@example.com", "store1", "store2", 5, 500)
        .unwrap();
    journal
        .set_phase(entry.id, mailfleet_move::Phase::Copying)
        .unwrap();
    journal
        .record_pass(entry.id, &first.state, Duration::from_millis(10))
        .unwrap();
    drop(journal);

    // Meanwhile a message goes missing on the target.
    let conf2 = stack.base().join("store2").join("dovecot.conf");
    let st = std::process::Command::new("doveadm")
        .arg("-c")
        .arg(&conf2)
        .args([
            "expunge",
            "-u",
            "alice@example.com",
            "mailbox",
            "INBOX",
            "uid",
            "3",
        ])
        .status()
        .unwrap();
    assert!(st.success());

    let out = mailfleet(&["--config", c, "--json", "move", "resume"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = report["moves"][0]["error"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let by_verify =
        error.contains("not switched") && error.contains("INBOX: UID 3 missing on the target");
    let by_pass = error.contains("UID=3") && error.contains("missing locally");
    assert!(by_verify || by_pass, "{report:#}");
    let status = mailfleet(&["--config", c, "--json", "move", "status"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["moves"][0]["phase"], "failed", "{status:#}");
    let account = mailfleet(&[
        "--config",
        c,
        "--json",
        "accounts",
        "show",
        "alice@example.com",
    ]);
    let account: serde_json::Value = serde_json::from_slice(&account.stdout).unwrap();
    assert_eq!(account["server"], "store1", "switched despite the verify");
    assert_eq!(account["locked"], false, "left locked");
    // Its mail still goes to the source.
    let tag = crate::common::unique_tag("verify");
    send(
        stack.info.ports.smtp,
        "bob@example.com",
        "alice@example.com",
        &tag,
    )
    .await;
    let got = wait_for_mail(
        stack.info.ports.stores[0].imap,
        "alice@example.com",
        &tag,
        D,
    )
    .await;
    assert_eq!(got.len(), 1, "the next mail did not reach store1");
}

//! Regression tests for the policy defects found by trying it as a new admin would (issue
//! "Defects found by trying every capability"); each is named after the defect it pins.

use std::path::PathBuf;
use std::time::Duration;

use mailfleet_stack::TestStack;
use serde_json::Value;

use crate::policy::{delivered, held_of, hook_postfix, start_server, submit, wait_for};

/// The stack's config with the shared Redis state, a long window (nothing is released by
/// itself) and alice limited to five messages.
fn redis_config(stack: &TestStack, policy: u16) -> PathBuf {
    let conf = stack.base().join("mx1/conf");
    let text = std::fs::read_to_string(stack.config_path()).unwrap();
    let embedded = "[state]\nbackend = \"embedded\"\n";
    assert!(text.contains(embedded), "the stack's config changed shape");
    let text = text.replace(
        embedded,
        &format!(
            "[state]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:{}/0\"\n",
            stack.info.ports.redis
        ),
    );
    let path = stack.base().join("policy-redis.toml");
    std::fs::write(
        &path,
        format!(
            "{text}\n[policy]\nlisten = \"127.0.0.1:{policy}\"\nwindow_secs = 3600\n\
             release_interval_secs = 3600\nblock_refresh_secs = 1\n\
             postfix_config_dir = {conf:?}\n\n\
             [[policy.quota]]\nfor = \"alice@example.com\"\nmessages = 5\n"
        ),
    )
    .unwrap();
    path
}

fn json(config: &std::path::Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&crate::common::mailfleet_ok(config, &all)).unwrap()
}

async fn send_burst(stack: &TestStack, tag: &str, n: usize) {
    for i in 0..n {
        submit(
            stack,
            "alice@example.com",
            &["bob@example.com"],
            &format!("{tag}-{i}"),
        )
        .await
        .unwrap_or_else(|e| panic!("{tag} message {i} refused: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_commands_ignore_the_redis_state_store() {
    let stack = TestStack::start().await.expect("stack");
    let port = mailfleet_stack::ports::free_ports("127.0.0.1", 1)[0];
    let config = redis_config(&stack, port);
    let _server = start_server(&config, port);
    hook_postfix(&stack, &config);
    let data_dir = stack.config().unwrap().data_dir;
    let sqlite = data_dir.join("policy.db");

    // Eight at once against a quota of five: three held, recorded in Redis.
    send_burst(&stack, "burst", 8).await;
    wait_for("5 delivered and 3 held", Duration::from_secs(30), || {
        delivered(&stack, "burst-") == 5 && held_of(&stack, "alice@example.com") == 3
    });
    let status = json(&config, &["policy", "status"]);
    assert_eq!(status["held"], 3, "status reads Redis: {status:#}");
    assert!(
        status["senders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["account"] == "alice@example.com" && s["usage"]["messages"] == 5),
        "{status:#}"
    );
    let held = json(&config, &["policy", "held", "alice@example.com"]);
    assert_eq!(held.as_array().map(Vec::len), Some(3), "{held:#}");

    // release lets the three go now.
    crate::common::mailfleet_ok(&config, &["policy", "release", "alice@example.com"]);
    wait_for(
        "the released mail delivered",
        Duration::from_secs(30),
        || held_of(&stack, "alice@example.com") == 0 && delivered(&stack, "burst-") == 8,
    );

    // Over quota still: three more are held, and purge deletes them.
    send_burst(&stack, "again", 3).await;
    wait_for("3 more held", Duration::from_secs(30), || {
        held_of(&stack, "alice@example.com") == 3
    });
    wait_for("their records in Redis", Duration::from_secs(10), || {
        json(&config, &["policy", "held"]).as_array().map(Vec::len) == Some(3)
    });
    crate::common::mailfleet_ok(&config, &["policy", "purge", "alice@example.com"]);
    wait_for("the purged mail gone", Duration::from_secs(10), || {
        held_of(&stack, "alice@example.com") == 0
    });
    assert_eq!(delivered(&stack, "again-"), 0, "purged mail was delivered");

    // reset: the next message passes at once.
    crate::common::mailfleet_ok(&config, &["policy", "reset", "alice@example.com"]);
    send_burst(&stack, "after-reset", 1).await;
    wait_for(
        "the message after reset delivered",
        Duration::from_secs(30),
        || delivered(&stack, "after-reset-") == 1,
    );
    assert_eq!(held_of(&stack, "alice@example.com"), 0);
    assert!(
        !sqlite.exists(),
        "{} was created although the state is in Redis",
        sqlite.display()
    );
}

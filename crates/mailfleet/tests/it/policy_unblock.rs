//! A `compromised` block lifts itself once the account's password really changes, in the
//! embedded directory and in slapd; a block for another reason stays.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mailfleet_stack::TestStack;
use serde_json::Value;

use crate::common::ChildGuard as Server;

fn with_policy(stack: &TestStack, text: &str, name: &str) -> PathBuf {
    let port = mailfleet_stack::ports::free_ports("127.0.0.1", 1)[0];
    let path = stack.base().join(name);
    std::fs::write(
        &path,
        format!("{text}\n[policy]\nlisten = \"127.0.0.1:{port}\"\nblock_refresh_secs = 1\n"),
    )
    .unwrap();
    path
}

fn serve(config: &Path) -> Server {
    let port = mailfleet_core::Config::load(config)
        .unwrap()
        .policy
        .listen
        .port();
    crate::common::policy_serve(config, port, &config.with_extension("log"))
}

fn blocked(config: &Path) -> Vec<String> {
    let out = crate::common::mailfleet_ok(config, &["--json", "policy", "blocked"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|b| b["address"].as_str().unwrap().to_string())
        .collect()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Blocks erin (compromised) and dave (by hand), changes both passwords through the
/// directory, and checks that only erin's block goes.
async fn scenario(config: &Path, lifted_by: &str) {
    let cfg = mailfleet_core::Config::load(config).unwrap();
    let _server = serve(config);
    crate::common::mailfleet_ok(
        config,
        &[
            "policy",
            "block",
            "erin@example.com",
            "--reason",
            "compromised: test",
        ],
    );
    crate::common::mailfleet_ok(
        config,
        &[
            "policy",
            "block",
            "dave@example.org",
            "--reason",
            "spam run, ask support",
        ],
    );
    assert_eq!(blocked(config), ["dave@example.org", "erin@example.com"]);
    // No wait needed for the fingerprint: `policy block` recorded it as it blocked her. For
    // pwdChangedTime to be later than the block (seconds), the change waits for the next second.
    let blocked_at = chrono::Utc::now().timestamp();
    while chrono::Utc::now().timestamp() == blocked_at {
        std::thread::sleep(Duration::from_millis(20));
    }
    let directory = mailfleet_core::directory::open(&cfg.directory)
        .await
        .unwrap();
    for who in ["erin@example.com", "dave@example.org"] {
        let a = mailfleet_core::Address::parse(who).unwrap();
        let new = mailfleet_core::password::hash("a much better secret 2026").unwrap();
        directory.set_password_hash(&a, Some(&new)).await.unwrap();
    }
    wait_for("erin's block to be lifted", || {
        blocked(config) == ["dave@example.org"]
    });
    // The server logs the lift just after it made it.
    let logged = || {
        std::fs::read_to_string(config.with_extension("log")).is_ok_and(|l| l.contains(lifted_by))
    };
    wait_for("the lift in the server's log", logged);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_change_lifts_a_compromised_block() {
    let stack = TestStack::start().await.expect("stack");
    let embedded = std::fs::read_to_string(stack.config_path()).unwrap();
    scenario(
        &with_policy(&stack, &embedded, "embedded.toml"),
        "password changed, send block",
    )
    .await;

    let layout = mailfleet_stack::Layout::new(&stack.base());
    let ldap =
        mailfleet_stack::demo::config_text(&layout, &stack.info.host, &stack.info.ports, "ldap");
    let config = with_policy(&stack, &ldap, "ldap.toml");
    // The LDAP scenario starts from the same state as the embedded one.
    crate::common::mailfleet_ok(&config, &["policy", "unblock", "dave@example.org"]);
    // slapd runs the ppolicy overlay, which keeps pwdChangedTime.
    scenario(&config, "password changed (pwdChangedTime)").await;
}

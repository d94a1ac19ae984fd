//! `mailfleet audit passwords` on the demo directory: guessable passwords in several schemes
//! are found (without printing them unless asked), strong ones are not, and `--block` blocks
//! exactly the weak accounts with reason `weak-password`.

use base64::Engine as _;
use mailfleet_stack::TestStack;
use serde_json::Value;

fn audit(config: &std::path::Path, extra: &[&str]) -> (Option<i32>, Value) {
    let mut args = vec![
        "--config",
        config.to_str().unwrap(),
        "--json",
        "audit",
        "passwords",
    ];
    args.extend_from_slice(extra);
    let out = crate::common::mailfleet(&args);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), v)
}

#[tokio::test(flavor = "multi_thread")]
async fn weak_passwords_are_found_and_blocked() {
    let stack = TestStack::start().await.expect("stack");
    let config = stack.config_path();
    let cfg = stack.config().unwrap();
    let directory = mailfleet_core::directory::open(&cfg.directory)
        .await
        .unwrap();
    let ssha = {
        use sha1::Digest as _;
        let d = sha1::Sha1::new()
            .chain_update("password")
            .chain_update("pepper")
            .finalize();
        let raw = [d.as_slice(), b"pepper"].concat();
        format!(
            "{{SSHA}}{}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    };
    let weak = [
        ("alice@example.com", "{PLAIN}Alice2024".to_string()),
        ("bob@example.com", ssha),
        (
            "carol@example.org",
            mailfleet_core::password::hash("123456").unwrap(),
        ),
    ];
    for (who, hash) in &weak {
        let a = mailfleet_core::Address::parse(who).unwrap();
        directory.set_password_hash(&a, Some(hash)).await.unwrap();
    }

    // The top 200 of the list keeps the slow crypt hashes of the strong accounts quick.
    let (code, report) = audit(&config, &["--top", "200"]);
    assert_eq!(code, Some(1), "weak passwords found: exit 1");
    let found: Vec<&str> = report["weak"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["address"].as_str().unwrap())
        .collect();
    assert_eq!(
        found,
        ["alice@example.com", "bob@example.com", "carol@example.org"],
        "{report:#}"
    );
    let text = report.to_string();
    assert!(
        !text.contains("Alice2024") && !text.contains("123456"),
        "passwords printed: {text}"
    );
    let sources: Vec<&str> = report["weak"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["address", "common list", "common list"]);

    let (_, shown) = audit(&config, &["--top", "200", "--show"]);
    assert!(shown.to_string().contains("Alice2024"));

    let (_, _) = audit(&config, &["--top", "200", "--block"]);
    let blocked: Value = serde_json::from_str(&crate::common::mailfleet_ok(
        &config,
        &["--json", "policy", "blocked"],
    ))
    .unwrap();
    let blocked: Vec<(&str, &str)> = blocked
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["address"].as_str().unwrap(),
                b["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(blocked.len(), 3, "{blocked:?}");
    assert!(
        blocked.iter().all(|(_, r)| r.starts_with("weak-password")),
        "{blocked:?}"
    );
}

//! TLS and SMTP AUTH in the probes, against the demo's Postfix and Dovecot with certificates
//! from the demo's own CA: verified when the CA is trusted, CRITICAL when it is not or the
//! name is wrong, accepted (and said so) when verification is relaxed; AUTH really checked.

use std::path::{Path, PathBuf};

use mailfleet_stack::TestStack;
use serde_json::Value;

fn probe(config: &Path, servers: &[&str]) -> Vec<Value> {
    let mut args = vec!["--config", config.to_str().unwrap(), "probe", "--json"];
    args.extend_from_slice(servers);
    let out = crate::common::mailfleet(&args);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn find<'a>(outcomes: &'a [Value], server: &str, check: &str) -> &'a Value {
    outcomes
        .iter()
        .find(|o| o["server"] == server && o["check"] == check)
        .unwrap_or_else(|| panic!("no {server} {check} in {outcomes:#?}"))
}

fn message(o: &Value) -> &str {
    o["message"].as_str().unwrap()
}

/// The stack's config with store1's `tls` line replaced.
fn store1_tls(stack: &TestStack, tls: &str) -> PathBuf {
    let text = std::fs::read_to_string(stack.config_path()).unwrap();
    let marker = "name = \"store1\"";
    let at = text.find(marker).unwrap();
    let (head, tail) = text.split_at(at);
    let start = tail.find("tls = {").unwrap();
    let end = start + tail[start..].find('\n').unwrap();
    let text = format!("{head}{}{tls}{}", &tail[..start], &tail[end..]);
    let path = stack.base().join("tls-test.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn tls_is_verified_against_the_trusted_ca_and_auth_logs_in() {
    let stack = TestStack::start().await.expect("stack");
    let outcomes = probe(&stack.config_path(), &["mx1", "store1"]);
    for (server, check) in [
        ("mx1", "smtp"),
        ("mx1", "submission"),
        ("store1", "imap"),
        ("store1", "imaps"),
        ("store1", "pop3"),
        ("store1", "pop3s"),
        ("store1", "lmtp"),
    ] {
        let o = find(&outcomes, server, check);
        assert_eq!(o["state"], "OK", "{o:#}");
        let m = message(o);
        assert!(m.contains("TLSv1.3"), "{server} {check}: {m}");
        assert!(!m.contains("not verified"), "{server} {check}: {m}");
        // The demo's certificates are valid for a year.
        assert!(m.contains("certificate expires in 36"), "{m}");
    }
    let sub = find(&outcomes, "mx1", "submission");
    assert!(
        message(sub).contains("authenticated as probe@example.com"),
        "{sub:#}"
    );
    let names: Vec<&str> = sub["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "connect", "banner", "ehlo", "starttls", "tls", "ehlo", "auth"
        ]
    );
    let imaps: Vec<&str> = find(&outcomes, "store1", "imaps")["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(imaps[..3], ["connect", "tls", "banner"]);
}

#[tokio::test]
async fn an_untrusted_or_misnamed_certificate_is_critical_unless_relaxed() {
    let stack = TestStack::start().await.expect("stack");
    // Without the demo CA the certificate chains to nothing the system trusts.
    let untrusted = store1_tls(&stack, "tls = { verify = true }");
    let outcomes = probe(&untrusted, &["store1"]);
    for check in ["imap", "imaps", "pop3", "pop3s"] {
        let o = find(&outcomes, "store1", check);
        assert_eq!(o["state"], "CRITICAL", "{o:#}");
        assert!(message(o).starts_with("tls: "), "{o:#}");
        assert!(message(o).contains("UnknownIssuer"), "{o:#}");
    }
    // Trusted CA, but the certificate does not carry the name asked for.
    let ca = stack.base().join("tls/ca.pem");
    let misnamed = store1_tls(
        &stack,
        &format!(
            "tls = {{ ca_file = {:?}, server_name = \"imap.elsewhere.test\" }}",
            ca.display().to_string()
        ),
    );
    let o = probe(&misnamed, &["store1"]);
    let o = find(&o, "store1", "imaps");
    assert_eq!(o["state"], "CRITICAL", "{o:#}");
    assert!(message(o).contains("not valid for name"), "{o:#}");
    // Relaxed: the check passes and says what strict checking refused.
    let relaxed = store1_tls(&stack, "tls = { verify = false }");
    let outcomes = probe(&relaxed, &["store1"]);
    for check in ["imap", "imaps", "pop3", "pop3s"] {
        let o = find(&outcomes, "store1", check);
        assert_eq!(o["state"], "OK", "{o:#}");
        assert!(message(o).contains("not verified"), "{o:#}");
        assert!(message(o).contains("UnknownIssuer"), "{o:#}");
    }
    // STARTTLS switched off: the plain ports are probed in clear text.
    let clear = store1_tls(&stack, "tls = { starttls = \"off\" }");
    let outcomes = probe(&clear, &["store1"]);
    let o = find(&outcomes, "store1", "imap");
    assert_eq!(o["state"], "OK", "{o:#}");
    assert!(!message(o).contains("TLS"), "{o:#}");
}

#[tokio::test]
async fn a_wrong_password_fails_smtp_auth() {
    let stack = TestStack::start().await.expect("stack");
    let wrong = stack.base().join("wrong.secret");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let text = std::fs::read_to_string(stack.config_path()).unwrap();
    let at = text.find("[probe]\npassword_file = ").unwrap() + "[probe]\n".len();
    let end = at + text[at..].find('\n').unwrap();
    let text = format!(
        "{}password_file = {:?}{}",
        &text[..at],
        wrong.display().to_string(),
        &text[end..]
    );
    let config = stack.base().join("wrong-password.toml");
    std::fs::write(&config, text).unwrap();
    let outcomes = probe(&config, &["mx1"]);
    let o = find(&outcomes, "mx1", "submission");
    assert_eq!(o["state"], "CRITICAL", "{o:#}");
    assert!(message(o).starts_with("auth: 535"), "{o:#}");
    // Port 25 asks for no AUTH and stays OK.
    assert_eq!(find(&outcomes, "mx1", "smtp")["state"], "OK");
}

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
    server_tls(stack, "store1", tls)
}

/// The stack's config with one server's `tls` line replaced.
fn server_tls(stack: &TestStack, server: &str, tls: &str) -> PathBuf {
    let text = std::fs::read_to_string(stack.config_path()).unwrap();
    let marker = format!("name = \"{server}\"");
    let at = text.find(&marker).unwrap();
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

/// An HTTPS server on loopback with the demo's certificate: answers every request with 200.
async fn https_server(base: &Path) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(base.join("tls/server.pem"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_file(base.join("tls/server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = s.shutdown().await;
            });
        }
    });
    port
}

// Multi-threaded: the HTTPS server runs here while the test waits on the probe process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_probed_over_verified_tls() {
    let stack = TestStack::start().await.expect("stack");
    let port = https_server(&stack.base()).await;
    let ca = stack.base().join("tls/ca.pem");
    let mut text = std::fs::read_to_string(stack.config_path()).unwrap();
    text.push_str(&format!(
        "\n[[server]]\nname = \"web1\"\nroles = [\"proxy\"]\nhost = \"127.0.0.1\"\nports = {{ https = {port} }}\nhttp_path = \"/webmail\"\ntls = {{ ca_file = {:?} }}\n\n[[server]]\nname = \"web2\"\nroles = [\"proxy\"]\nhost = \"localhost\"\nports = {{ https = {port} }}\n",
        ca.display().to_string()
    ));
    let config = stack.base().join("https.toml");
    std::fs::write(&config, text).unwrap();
    let outcomes = probe(&config, &["web1", "web2"]);
    let ok = find(&outcomes, "web1", "https");
    assert_eq!(ok["state"], "OK", "{ok:#}");
    assert!(
        message(ok).contains("200") && message(ok).contains("TLSv1.3"),
        "{ok:#}"
    );
    // web2 does not trust the demo CA.
    let untrusted = find(&outcomes, "web2", "https");
    assert_eq!(untrusted["state"], "CRITICAL", "{untrusted:#}");
    assert!(
        message(untrusted).contains("UnknownIssuer"),
        "{untrusted:#}"
    );
}

#[tokio::test]
async fn ldap_uses_starttls_and_verifies_the_certificate() {
    let stack = TestStack::start().await.expect("stack");
    let outcomes = probe(&stack.config_path(), &["ldap1", "ldap2"]);
    for (server, check) in [("ldap1", "ldap"), ("ldap2", "ldap"), ("ldap2", "replica")] {
        let o = find(&outcomes, server, check);
        assert_eq!(o["state"], "OK", "{o:#}");
        assert_eq!(o["steps"][0]["name"], "connect+starttls", "{o:#}");
    }
    assert!(message(find(&outcomes, "ldap1", "ldap")).contains("StartTLS, certificate expires"));
    let untrusted = server_tls(&stack, "ldap1", "tls = { verify = true }");
    let o = probe(&untrusted, &["ldap1"]);
    let o = find(&o, "ldap1", "ldap");
    assert_eq!(o["state"], "CRITICAL", "{o:#}");
    assert!(message(o).contains("UnknownIssuer"), "{o:#}");
    let relaxed = server_tls(&stack, "ldap1", "tls = { verify = false }");
    let o = probe(&relaxed, &["ldap1"]);
    let o = find(&o, "ldap1", "ldap");
    assert_eq!(o["state"], "OK", "{o:#}");
    assert!(message(o).contains("not verified"), "{o:#}");
}

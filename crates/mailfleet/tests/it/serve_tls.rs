//! The dashboard over TLS (`[serve] tls`): off loopback only with a certificate (refused at
//! load without one, naming `serve.listen`); a key that does not go with its certificate is
//! refused naming `serve.tls`; with TLS the dashboard answers HTTPS with a certificate the
//! client verifies, refuses plain HTTP, and a client that connects and never shakes hands
//! holds up nobody else's login page.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::mailfleet;

/// GET `path` over HTTPS, verifying the server against `ca`: the whole response.
async fn https_get(port: u16, ca: &std::path::Path, path: &str) -> Result<String, String> {
    let tls = mailfleet_core::tls::strict_client(Some(ca)).map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut s = tokio_rustls::TlsConnector::from(Arc::clone(&tls))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    // A TLS peer may close without close_notify after a complete response.
    let _ = s.read_to_end(&mut out).await;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn check(config: &std::path::Path) -> (bool, String) {
    let out = mailfleet(&["--config", config.to_str().unwrap(), "config", "check"]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_dashboard_speaks_tls_and_needs_it_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let certs = mailfleet_stack::certs::ensure(&dir.path().join("tls"), "127.0.0.1").unwrap();
    let hash = crate::serve_web::operator_hash(dir.path(), "tls-password");
    let port = mailfleet_stack::ports::free_ports("127.0.0.1", 1)[0];
    let config = dir.path().join("mailfleet.toml");
    let write = |listen: &str, tls: &str| {
        std::fs::write(
            &config,
            format!(
                "data_dir = \"data\"\n[serve]\nparts = [\"web\"]\nlisten = \"{listen}\"\n{tls}\
                 [[serve.operators]]\nname = \"admin\"\npassword_hash = \"{hash}\"\n"
            ),
        )
        .unwrap();
    };
    let tls = format!(
        "tls = {{ cert_file = {:?}, key_file = {:?} }}\n",
        certs.cert, certs.key
    );

    // Off loopback: refused without TLS, accepted with it (checked only: tests bind loopback).
    write("192.0.2.10:8443", "");
    let (ok, err) = check(&config);
    assert!(
        !ok && err.contains("serve.listen") && err.contains("serve] tls"),
        "{err}"
    );
    write("192.0.2.10:8443", &tls);
    let (ok, err) = check(&config);
    assert!(ok, "{err}");
    // A key that is not the certificate's: refused, never served as plain HTTP.
    write(
        "127.0.0.1:8443",
        &format!(
            "tls = {{ cert_file = {:?}, key_file = {:?} }}\n",
            certs.cert, certs.cert
        ),
    );
    let (ok, err) = check(&config);
    assert!(
        !ok && err.contains("serve.tls") && err.contains("server.pem"),
        "{err}"
    );

    write(&format!("127.0.0.1:{port}"), &tls);
    let _serve = crate::common::serve_listening(&config, port).await;
    // A client that connects and never shakes hands stays connected the whole time.
    let _silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let page = https_get(port, &certs.ca, "/login").await.unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("name=\"password\""), "{page}");
    let cookie = page
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_default();
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{page}"
    );
    let api = https_get(port, &certs.ca, "/api/overview").await.unwrap();
    assert!(api.starts_with("HTTP/1.1 401"), "{api}");

    // Plain HTTP on the TLS port gets no page.
    let mut plain = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    plain
        .write_all(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), plain.read_to_end(&mut got)).await;
    assert!(
        !String::from_utf8_lossy(&got).contains("name=\"password\""),
        "a page over plain HTTP"
    );
}

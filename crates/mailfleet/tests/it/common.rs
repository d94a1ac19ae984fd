//! Helpers: run the binary, send mail through the stack's Postfix, read it back over IMAP.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use mailfleet_stack::demo::DEMO_PASSWORD;

/// Runs `mailfleet` with these arguments and no inherited config.
pub(crate) fn mailfleet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mailfleet"))
        .args(args)
        .env_remove("MAILFLEET_CONFIG")
        .env_remove("MAILFLEET_LOG")
        .output()
        .expect("run mailfleet")
}

/// Runs `mailfleet --config CONFIG args...`, failing the test unless it exits 0.
pub(crate) fn mailfleet_ok(config: &Path, args: &[&str]) -> String {
    let mut all = vec!["--config", config.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    let out = mailfleet(&all);
    assert!(
        out.status.success(),
        "mailfleet {all:?} failed: {}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sends a message through an SMTP server on loopback.
pub(crate) async fn send(port: u16, from: &str, to: &str, subject: &str) {
    let message = Message::builder()
        .from(from.parse().expect("from"))
        .to(to.parse().expect("to"))
        .subject(subject)
        .body(format!("Test message {subject}\r\n"))
        .expect("message");
    let smtp = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .build();
    smtp.send(message)
        .await
        .expect("Postfix accepted the message");
}

/// Logs in over IMAP and returns the messages in INBOX whose subject contains `tag`.
pub(crate) async fn imap_find(port: u16, user: &str, tag: &str) -> Vec<Vec<u8>> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to IMAP");
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await.expect("IMAP greeting");
    let mut session = client
        .login(user, DEMO_PASSWORD)
        .await
        .map_err(|(e, _)| e)
        .expect("IMAP login");
    session.select("INBOX").await.expect("SELECT INBOX");
    let ids = session
        .search(format!("SUBJECT \"{tag}\""))
        .await
        .expect("SEARCH");
    let mut out = Vec::new();
    if !ids.is_empty() {
        let set = ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let fetches: Vec<_> = session
            .fetch(set, "BODY.PEEK[]")
            .await
            .expect("FETCH")
            .try_collect()
            .await
            .expect("FETCH responses");
        out = fetches
            .iter()
            .filter_map(|f| f.body().map(<[u8]>::to_vec))
            .collect();
    }
    let _ = session.logout().await;
    out
}

/// Waits until a message tagged `tag` can be read over IMAP, or `timeout` passes.
pub(crate) async fn wait_for_mail(
    port: u16,
    user: &str,
    tag: &str,
    timeout: Duration,
) -> Vec<Vec<u8>> {
    let end = Instant::now() + timeout;
    loop {
        let found = imap_find(port, user, tag).await;
        if !found.is_empty() || Instant::now() >= end {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A tag unique to this test run, to find exactly the message a test sent.
pub(crate) fn unique_tag(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{name}-{}-{nanos}", std::process::id())
}

/// A child process the test started, killed (by its PID) when the test ends.
pub(crate) struct ChildGuard(pub(crate) std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `mailfleet policy serve` on 127.0.0.1:`port` (its log, at info level, in `log`)
/// and waits until it listens.
pub(crate) fn policy_serve(config: &Path, port: u16, log: &Path) -> ChildGuard {
    let child = Command::new(env!("CARGO_BIN_EXE_mailfleet"))
        .args([
            "--config",
            config.to_str().expect("utf-8 path"),
            "-v",
            "policy",
            "serve",
        ])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).expect("server log"))
        .spawn()
        .expect("start mailfleet policy serve");
    let server = ChildGuard(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "policy server on {port} did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

//! Helpers: run the binary, send mail through the stack's Postfix, read it back over IMAP.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use mailfleet_mailclient::imap::Imap;
use mailfleet_mailclient::smtp::{Options, Smtp};
use mailfleet_mailclient::{Clock, Endpoint};
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

/// Runs `mailfleet --config CONFIG --json args...` and parses what it printed, failing the
/// test unless it exits 0.
pub(crate) fn mailfleet_json(config: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = mailfleet_ok(Path::new(config), &all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("mailfleet {args:?}: {e}: {out}"))
}

/// A stack whose stores were backed up once, so every check of a probe round can be OK (the
/// demo fleet's backup check is CRITICAL until a backup succeeded).
pub(crate) async fn backed_up_stack() -> mailfleet_stack::TestStack {
    let stack = mailfleet_stack::TestStack::start().await.expect("stack");
    mailfleet_ok(&stack.config_path(), &["backup", "run"]);
    stack
}

/// A clock for the tests' own mail clients: a generous deadline on each command.
pub(crate) fn clock() -> Clock {
    Clock::new(Duration::from_secs(30))
}

/// Where the running test stacks' service on `port` listens (each server on its own
/// loopback address); a port of no stack is this machine's 127.0.0.1.
pub(crate) fn host_of(port: u16) -> &'static str {
    static SEEN: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let host = mailfleet_stack::testkit::host_of_port(port).unwrap_or_else(|| "127.0.0.1".into());
    let mut seen = SEEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(h) = seen.iter().find(|h| **h == host) {
        return h;
    }
    // A handful of addresses (one per demo server), kept for the endpoints' lifetime.
    let h: &'static str = Box::leak(host.into_boxed_str());
    seen.push(h);
    h
}

/// A clear-text endpoint of a stack's service (the stack's stores allow it on loopback).
pub(crate) fn local(port: u16) -> Endpoint<'static> {
    Endpoint::plain(host_of(port), port)
}

/// An SMTP session with a server on loopback, greeted.
pub(crate) async fn smtp(port: u16) -> Smtp {
    Smtp::connect(&local(port), Options::default(), &clock())
        .await
        .expect("SMTP greeting")
}

/// Sends a message through a stack's SMTP port (mx1's, where two MTAs share the number).
pub(crate) async fn send(port: u16, from: &str, to: &str, subject: &str) {
    send_via(host_of(port), port, from, to, subject).await;
}

/// Sends a message through the SMTP server at `host:port`, in clear text.
pub(crate) async fn send_via(host: &str, port: u16, from: &str, to: &str, subject: &str) {
    let message = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\r\nTest message {subject}\r\n"
    );
    let mut s = Smtp::connect(&Endpoint::plain(host, port), Options::default(), &clock())
        .await
        .unwrap_or_else(|e| panic!("SMTP greeting of {host}:{port}: {e}"));
    s.send(from, &[to], message.as_bytes())
        .await
        .expect("Postfix accepted the message");
    s.quit().await;
}

/// Logs in to a store's IMAP port on loopback as a demo account.
pub(crate) async fn imap(port: u16, user: &str) -> Imap {
    Imap::login(&local(port), user, DEMO_PASSWORD, &clock())
        .await
        .expect("IMAP login")
}

/// Logs in over IMAP and returns the messages in INBOX whose subject contains `tag`.
pub(crate) async fn imap_find(port: u16, user: &str, tag: &str) -> Vec<Vec<u8>> {
    let mut session = imap(port, user).await;
    session.select("INBOX").await.expect("SELECT INBOX");
    let uids = session
        .uid_search(&format!("SUBJECT \"{tag}\""))
        .await
        .expect("SEARCH");
    let mut out = Vec::new();
    if !uids.is_empty() {
        let set = uids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        out = session
            .uid_fetch(&set, "BODY.PEEK[]")
            .await
            .expect("FETCH")
            .iter()
            .filter_map(|f| f.body().map(<[u8]>::to_vec))
            .collect();
    }
    session.logout().await;
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

/// Whether a check reads a machine's resources (its state depends on how busy the machine
/// running the tests is, not on the mail service).
pub(crate) fn resource_check(check: &str) -> bool {
    [
        "cpu",
        "load",
        "memory",
        "swap",
        "net-errors",
        "tcp-listen-overflows",
    ]
    .contains(&check)
        || ["disk:", "inodes:", "io:"]
            .iter()
            .any(|p| check.starts_with(p))
}

/// Saves one message into `folder` of `user` on a demo `store` with its doveadm (a test's own
/// setup of a mailbox: faster than SMTP, and the message is exactly what is given).
pub(crate) fn doveadm_save(
    stack: &mailfleet_stack::TestStack,
    store: &str,
    user: &str,
    folder: &str,
    message: &str,
) {
    use std::io::Write;
    let conf = stack.base().join(store).join("dovecot.conf");
    let mut child = std::process::Command::new("doveadm")
        .arg("-c")
        .arg(&conf)
        .args(["save", "-u", user, "-m", folder])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("doveadm");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(message.as_bytes())
        .expect("write");
    assert!(
        child.wait().expect("doveadm").success(),
        "doveadm save for {user} on {store}"
    );
}

/// `mailfleet serve` with `config`, returned once something accepts on loopback `port` (its
/// dashboard), within 30 s.
pub(crate) async fn serve_listening(config: &Path, port: u16) -> ChildGuard {
    let serve = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_mailfleet"))
            .arg("--config")
            .arg(config)
            .arg("serve")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mailfleet serve"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the dashboard never listened on {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    serve
}

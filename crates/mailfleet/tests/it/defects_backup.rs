//! Regression tests for the backup and restore defects found by trying them as a new admin
//! would; each is named after the defect it pins.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mailfleet_stack::TestStack;

use crate::corpus::{fill, with_backup};

/// Messages in alice's INBOX on store1, through IMAP.
async fn inbox_count(stack: &TestStack) -> u32 {
    let mut s = crate::corpus::alice_imap(stack.info.ports.stores[0].imap).await;
    let n = s.select("INBOX").await.unwrap().exists;
    s.logout().await;
    n
}

/// Backs alice up, then deletes her INBOX's mail.
async fn back_up_and_delete(stack: &TestStack, config: &Path) -> u32 {
    crate::common::mailfleet_ok(config, &["backup", "run", "--account", "alice@example.com"]);
    let mut s = crate::corpus::alice_imap(stack.info.ports.stores[0].imap).await;
    let n = s.select("INBOX").await.unwrap().exists;
    crate::corpus::add_flags(&mut s, "1:*", "(\\Deleted)").await;
    s.expunge().await.unwrap();
    s.logout().await;
    n
}

fn write_config(stack: &TestStack, name: &str, text: &str) -> PathBuf {
    let path = stack.base().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_into_store_falls_back_to_plaintext_when_tls_fails_to_load() {
    let stack = TestStack::start().await.expect("stack");
    fill(&stack, 10).await;
    let text = std::fs::read_to_string(stack.config_path()).unwrap();
    let had = back_up_and_delete(&stack, &stack.config_path()).await;
    assert!(had > 0);

    // store1's CA file is gone (a typo, a missed deploy) and STARTTLS is required.
    let ca = stack.base().join("tls/ca.pem");
    let store1 = "name = \"store1\"";
    let at = text.find(store1).expect("store1 in the config");
    let (head, tail) = text.split_at(at);
    let broken = format!(
        "{head}{}",
        tail.replacen(
            &format!("tls = {{ ca_file = {:?} }}", ca.display().to_string()),
            "tls = { ca_file = \"no-such-ca.pem\", starttls = \"require\" }",
            1
        )
    );
    assert_ne!(broken, text, "the store's tls line was not found");
    let config = write_config(&stack, "broken-tls.toml", &broken);
    let out = crate::common::mailfleet(&[
        "--config",
        config.to_str().unwrap(),
        "restore",
        "--account",
        "alice@example.com",
        "--into-store",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the restore logged in without the TLS it requires: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains("store1") && stderr.contains("tls.ca_file"),
        "the error names the server and the key: {stderr}"
    );
    assert_eq!(inbox_count(&stack).await, 0, "nothing was appended");
}

/// The PIDs of store1's post-login IMAP processes (children of its Dovecot master).
fn imap_sessions(base: &Path) -> Vec<i32> {
    let master: i32 = std::fs::read_to_string(base.join("store1/run/master.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some((name, rest)) = stat.split_once(") ") else {
            continue;
        };
        let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if name.ends_with("(imap") && ppid == Some(master) {
            out.push(pid);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_into_store_hangs_when_the_store_stops_answering() {
    let stack = TestStack::start().await.expect("stack");
    fill(&stack, 300).await;
    let text = with_backup(
        &std::fs::read_to_string(stack.config_path()).unwrap(),
        "timeout_secs = 3\n",
    );
    let config = write_config(&stack, "deadline.toml", &text);
    assert!(back_up_and_delete(&stack, &config).await > 0);
    // The test's own sessions have logged out; their processes end a moment later.
    let quiet = Instant::now() + Duration::from_secs(10);
    while !imap_sessions(&stack.base()).is_empty() {
        assert!(Instant::now() < quiet, "an IMAP session stays open");
        std::thread::sleep(Duration::from_millis(20));
    }

    let mut restore = crate::common::ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_mailfleet"))
            .args(["--config", config.to_str().unwrap()])
            .args(["restore", "--account", "alice@example.com", "--into-store"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Freeze the restore's IMAP session as soon as it exists: the store stops answering.
    let frozen = loop {
        let pids = imap_sessions(&stack.base());
        if !pids.is_empty() {
            for p in &pids {
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*p),
                    nix::sys::signal::Signal::SIGSTOP,
                )
                .unwrap();
            }
            break pids;
        }
        if let Some(st) = restore.0.try_wait().unwrap() {
            panic!("the restore ended ({st}) before its session could be frozen");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let frozen_at = Instant::now();
    struct Thaw(Vec<i32>);
    impl Drop for Thaw {
        fn drop(&mut self) {
            for p in &self.0 {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*p),
                    nix::sys::signal::Signal::SIGCONT,
                );
            }
        }
    }
    let _thaw = Thaw(frozen);
    // The product's promise: each IMAP command gets timeout_secs (3 s). Margin: 10 s for
    // starting, logging out and a loaded machine.
    let limit = Duration::from_secs(3 + 10);
    let status = loop {
        if let Some(st) = restore.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            frozen_at.elapsed() < limit,
            "the restore still waits on the frozen store after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut restore.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(
        status.code(),
        Some(5),
        "a store that does not answer: unreachable"
    );
    assert!(
        stderr.contains("store1") && stderr.contains("no answer within 3"),
        "the error names the store and the deadline: {stderr}"
    );
}

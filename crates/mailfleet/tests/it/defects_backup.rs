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

fn locks(repo: &Path) -> Vec<String> {
    std::fs::read_dir(repo.join("locks"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_killed_backup_run_leaves_its_lock_forever() {
    let stack = TestStack::start().await.expect("stack");
    fill(&stack, 100).await;
    let repo = stack.base().join("data/backup");
    // Three runs killed (SIGKILL) while they hold their shared lock.
    let mut killed = 0;
    for _ in 0..10 {
        let mut run = crate::common::ChildGuard(
            Command::new(env!("CARGO_BIN_EXE_mailfleet"))
                .args(["--config", stack.config_path().to_str().unwrap()])
                .args(["backup", "run"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let before = locks(&repo).len();
        while locks(&repo).len() == before && run.0.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "no lock appeared");
            std::thread::sleep(Duration::from_millis(1));
        }
        if run.0.try_wait().unwrap().is_none() {
            run.0.kill().unwrap();
            run.0.wait().unwrap();
            // A run may finish (and drop its lock) between the look and the kill: only one
            // killed with its lock still there counts.
            if !locks(&repo).is_empty() {
                killed += 1;
            }
        }
        if killed == 3 {
            break;
        }
    }
    assert_eq!(
        killed, 3,
        "could not kill three runs while they held their lock"
    );
    // At least the last killed run's lock is there (a killed run that got as far as looking
    // at the others removed the earlier ones, as a live run does).
    assert!(
        !locks(&repo).is_empty(),
        "the killed runs left no lock to test with"
    );
    // The next run recognises the dead runs' locks and removes them; its own goes with it.
    crate::common::mailfleet_ok(&stack.config_path(), &["backup", "run"]);
    assert_eq!(
        locks(&repo),
        Vec::<String>::new(),
        "stale locks of dead runs remain"
    );
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(files_in(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out.sort();
    out
}

fn run_json(config: &Path, args: &[&str]) -> (i32, serde_json::Value, String) {
    let mut all = vec!["--config", config.to_str().unwrap(), "--json"];
    all.extend_from_slice(args);
    let out = crate::common::mailfleet(&all);
    let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap_or(-1),
        v,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn one_truncated_snapshot_stops_the_whole_repository() {
    let stack = TestStack::start().await.expect("stack");
    fill(&stack, 10).await;
    let config = stack.config_path();
    let repo = stack.base().join("data/backup");
    crate::common::mailfleet_ok(&config, &["backup", "run"]);
    crate::corpus::deliver(
        stack.info.ports.smtp,
        &[(
            b"Subject: later\r\n\r\nlater mail\r\n".to_vec(),
            vec!["alice@example.com"],
        )],
    )
    .await;
    crate::common::wait_for_mail(
        stack.info.ports.stores[0].imap,
        "alice@example.com",
        "later",
        Duration::from_secs(30),
    )
    .await;
    crate::common::mailfleet_ok(&config, &["backup", "run"]);
    let snaps = files_in(&repo.join("snapshots"));
    assert_eq!(snaps.len(), 2);
    let (damaged, intact) = (&snaps[0], &snaps[1]);
    let damaged_id = damaged.file_name().unwrap().to_string_lossy().into_owned();
    let intact_id = intact.file_name().unwrap().to_string_lossy().into_owned();
    let bytes = std::fs::read(damaged).unwrap();
    std::fs::write(damaged, &bytes[..bytes.len() / 3]).unwrap();

    // list: the intact one, the damaged one named, the damaged-repository code.
    let (code, listed, stderr) = run_json(&config, &["backup", "list"]);
    assert_eq!(code, 4, "{stderr}");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed:#}");
    assert_eq!(listed[0]["id"], intact_id.as_str());
    assert!(stderr.contains(&damaged_id), "{stderr}");
    // verify names it, with the same code.
    let (code, v, stderr) = run_json(&config, &["backup", "verify"]);
    assert_eq!(code, 4, "{stderr}");
    assert!(
        v["damaged"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d.as_str().unwrap().contains(&damaged_id)),
        "{v:#}"
    );
    // The others go on: a restore of the intact snapshot, a new backup, forget.
    let out = stack.base().join("restored");
    crate::common::mailfleet_ok(
        &config,
        &[
            "restore",
            "--snapshot",
            &intact_id,
            "--to",
            out.to_str().unwrap(),
        ],
    );
    assert!(!files_in(&out).is_empty());
    crate::common::mailfleet_ok(&config, &["backup", "run"]);
    crate::common::mailfleet_ok(&config, &["backup", "forget", "--keep-last", "1"]);
    // Asking for the damaged one by name says so.
    let (code, _, stderr) = run_json(
        &config,
        &[
            "restore",
            "--snapshot",
            &damaged_id,
            "--to",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 4, "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_blob_stops_the_restore_naming_the_blob_not_the_message() {
    let stack = TestStack::start().await.expect("stack");
    let files = fill(&stack, 40).await;
    let config = stack.config_path();
    let repo = stack.base().join("data/backup");
    crate::common::mailfleet_ok(&config, &["backup", "run"]);
    // One flipped byte in the largest blob (an attachment: recipes hold headers and small
    // parts), so the messages that use it cannot be rebuilt but their recipes still read.
    let (pack, offset, len) = {
        let r = mailfleet_backup::repo::Repository::open(
            Box::new(mailfleet_backup::target::DirTarget::new(&repo).unwrap()),
            None,
        )
        .unwrap();
        r.blobs_by_pack()
            .unwrap()
            .into_iter()
            .flat_map(|(p, blobs)| blobs.into_iter().map(move |(_, o, l)| (p.clone(), o, l)))
            .max_by_key(|(_, _, l)| *l)
            .unwrap()
    };
    let victim = repo.join("packs").join(&pack[..2]).join(&pack);
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[(offset + u64::from(len) / 2) as usize] ^= 0x55;
    std::fs::write(&victim, bytes).unwrap();

    let out = stack.base().join("restored");
    let (code, report, stderr) = run_json(&config, &["restore", "--to", out.to_str().unwrap()]);
    assert_eq!(code, 4, "a damaged repository: {stderr}");
    let failed = report["failed"]
        .as_array()
        .unwrap_or_else(|| panic!("{report:#} {stderr}"));
    assert!(!failed.is_empty(), "{report:#}");
    for f in failed {
        assert!(
            f["account"].is_string() && f["folder"].is_string() && f["file"].is_string(),
            "{f:#}"
        );
        assert!(f["error"].is_string(), "{f:#}");
    }
    assert!(
        failed.iter().any(|f| f["message_id"].is_string()),
        "a message whose recipe is intact is named by its Message-ID: {failed:#?}"
    );
    let restored = report["messages"].as_u64().unwrap() as usize;
    assert_eq!(
        restored + failed.len(),
        files,
        "every message restored or listed: {report:#}"
    );
    let written = files_in(&out)
        .iter()
        .filter(|p| {
            let p = p.to_string_lossy();
            p.contains("/cur/") || p.contains("/new/")
        })
        .count();
    assert_eq!(written, restored);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_counts_fewer_messages_than_the_snapshot_holds() {
    let stack = TestStack::start().await.expect("stack");
    fill(&stack, 10).await;
    // Copies in another folder are the same message file twice: one content, two messages.
    let mut s = crate::corpus::alice_imap(stack.info.ports.stores[0].imap).await;
    s.select("INBOX").await.unwrap();
    s.create("Copies").await.unwrap();
    s.copy("1:3", "Copies").await.unwrap();
    s.logout().await;
    let config = stack.config_path();
    crate::common::mailfleet_ok(&config, &["backup", "run"]);
    let (_, listed, _) = run_json(&config, &["backup", "list"]);
    let held: u64 = listed[0]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["messages"].as_u64().unwrap())
        .sum();
    let (code, v, stderr) = run_json(&config, &["backup", "verify"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        v["messages"].as_u64(),
        Some(held),
        "verify counts what the snapshot holds: {v:#}"
    );
    assert!(
        v["distinct_messages"].as_u64().is_some_and(|d| d < held),
        "and says how many are distinct: {v:#}"
    );
}

fn probe_backup_check(config: &Path, store: &str) -> Option<serde_json::Value> {
    let (_, outcomes, _) = run_json(config, &["probe", store]);
    outcomes
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["check"] == "backup")
        .cloned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_fleet_does_not_wire_the_backup_check() {
    let stack = TestStack::start().await.expect("stack");
    let config = stack.config_path();
    for store in ["store1", "store2"] {
        let check = probe_backup_check(&config, store)
            .unwrap_or_else(|| panic!("{store} has no backup check in the demo fleet"));
        assert_eq!(check["state"], "CRITICAL", "no backup yet: {check:#}");
        assert!(
            check["message"].as_str().unwrap().contains("no backup"),
            "{check:#}"
        );
    }
    crate::common::mailfleet_ok(&config, &["backup", "run"]);
    for store in ["store1", "store2"] {
        let check = probe_backup_check(&config, store).unwrap();
        assert_eq!(check["state"], "OK", "{check:#}");
    }
}

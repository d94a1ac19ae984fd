//! The audit log of the command line: each action (and nothing that only looks) recorded
//! with the Unix user, where it ran from, the command and its result, appended to
//! `DATA_DIR/audit.log`; an action whose process is killed stays on record without a result,
//! and a line cut short is said and left out while the rest is read.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{ChildGuard, mailfleet, mailfleet_json};

fn fleet(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("mailfleet.toml");
    std::fs::write(
        &path,
        "data_dir = \"data\"\n\n[backup]\nrepository = \"repo\"\n\n\
         [[server]]\nname = \"mx1\"\nroles = [\"mta\"]\nhost = \"127.0.0.1\"\nports = { smtp = 25 }\n\n\
         [[server]]\nname = \"store1\"\nroles = [\"mailbox\"]\nhost = \"127.0.0.1\"\n\
         ports = { imap = 143, lmtp = 24 }\nmaildir_root = \"mail\"\n",
    )
    .unwrap();
    path
}

#[test]
fn every_action_is_recorded_with_who_from_where_and_its_result() {
    let dir = tempfile::tempdir().unwrap();
    let config = fleet(dir.path());
    let c = config.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["--config", c];
        all.extend_from_slice(args);
        mailfleet(&all)
    };
    assert!(
        run(&["upgrade", "mark", "store1", "--reason", "kernel"])
            .status
            .success()
    );
    // Looking is not acting.
    assert!(run(&["upgrade", "marks"]).status.success());
    assert!(run(&["backup", "list"]).status.success());
    let sudo = Command::new(env!("CARGO_BIN_EXE_mailfleet"))
        .args(["--config", c, "upgrade", "unmark", "store1"])
        .env("SUDO_USER", "alice")
        .output()
        .unwrap();
    assert!(sudo.status.success(), "{sudo:?}");
    assert_eq!(
        run(&["policy", "release", "nobody@example.com"])
            .status
            .code(),
        Some(3)
    );
    let log = mailfleet_json(c, &["audit", "log"]);
    let actions = log["actions"].as_array().unwrap();
    let what: Vec<&str> = actions
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        what,
        ["upgrade mark", "upgrade unmark", "policy release"],
        "{log:#}"
    );
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    for a in actions {
        assert_eq!(a["via"], "cli");
        assert!(
            a["from"].as_str().unwrap().starts_with(host.trim()),
            "{a:#}"
        );
        assert!(a["ended"].is_string(), "{a:#}");
    }
    assert_eq!(actions[0]["who"], me.as_str());
    assert_eq!(actions[0]["result"], "ok");
    let args: Vec<&str> = actions[0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.ends_with(&["upgrade", "mark", "store1", "--reason", "kernel"]),
        "{args:?}"
    );
    if me == "root" {
        assert_eq!(actions[1]["who"], "root (sudo by alice)");
    }
    let failed = actions[2]["result"].as_str().unwrap();
    assert!(
        failed.starts_with("error (exit 3): ") && failed.contains("nobody@example.com"),
        "{failed}"
    );

    // An action killed in its middle: on record, without a result.
    let mut exec = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_mailfleet"))
            .args(["--config", c, "exec", "mx1", "--", "sleep", "60"])
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = mailfleet_json(c, &["audit", "log"]);
        if log["actions"].as_array().unwrap().len() == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "exec never recorded: {log:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
    exec.0.kill().unwrap();
    exec.0.wait().unwrap();
    // A line cut short (a crash while writing), then one more action after it.
    let file = dir.path().join("data/audit.log");
    let before = std::fs::read(&file).unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap()
        .write_all(b"{\"id\":\"20261203T1\n")
        .unwrap();
    assert!(run(&["upgrade", "mark", "store1"]).status.success());
    let after = std::fs::read(&file).unwrap();
    assert_eq!(&after[..before.len()], &before[..], "the log was rewritten");
    let out = run(&["--json", "audit", "log"]);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 8 left out"), "{stderr}");
    let log: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let actions = log["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 5, "{log:#}");
    assert_eq!(actions[3]["action"], "exec");
    assert!(actions[3]["result"].is_null(), "{:#}", actions[3]);
    assert_eq!(actions[4]["result"], "ok");
    // The human listing says the same, and --since leaves the old ones out.
    let text = String::from_utf8_lossy(&run(&["audit", "log"]).stdout).into_owned();
    assert!(
        text.contains("no result (still running, or its process was killed)"),
        "{text}"
    );
    let none = mailfleet_json(c, &["audit", "log", "--since", "2999-01-01"]);
    assert_eq!(none["actions"], serde_json::json!([]));
}

//! `[backup] schedule` in `mailfleet serve`: with the `backup` part the daemon backs the
//! stores up by itself at each due time, every run in the audit log as `schedule` with its
//! result and in the repository as a snapshot; a message delivered between two runs is in
//! the later snapshots. The part without a schedule is refused at load, naming the key.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{ChildGuard, mailfleet, mailfleet_json};

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_backups_run_by_themselves_and_are_audited() {
    let stack = mailfleet_stack::TestStack::start().await.expect("stack");
    let text = std::fs::read_to_string(stack.config_path()).unwrap();
    assert_eq!(text.matches("\n[backup]\n").count(), 1);

    // The part without a schedule is refused, naming the key.
    let bad = stack.config_path().with_file_name("no-schedule.toml");
    std::fs::write(&bad, format!("{text}\n[serve]\nparts = [\"backup\"]\n")).unwrap();
    let out = mailfleet(&["--config", bad.to_str().unwrap(), "config", "check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("backup.schedule"),
        "{err}"
    );

    let path = stack.config_path().with_file_name("scheduled.toml");
    std::fs::write(
        &path,
        text.replace("\n[backup]\n", "\n[backup]\nschedule = [\"every 3s\"]\n")
            + "\n[serve]\nparts = [\"backup\"]\n",
    )
    .unwrap();
    let c = path.to_str().unwrap();
    let _serve = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_mailfleet"))
            .args(["--config", c, "serve"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let finished = |n: usize| {
        let log = mailfleet_json(c, &["audit", "log"]);
        let runs: Vec<serde_json::Value> = log["actions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["action"] == "backup run" && a["result"].is_string())
            .cloned()
            .collect();
        (runs.len() >= n).then_some(runs)
    };
    // Each run is due 3 s after the previous start; a run takes seconds on a loaded machine.
    let wait = |n: usize, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(runs) = finished(n) {
                return runs;
            }
            assert!(Instant::now() < deadline, "{what}: {:?}", finished(0));
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    wait(1, "no scheduled backup ran");
    let messages = |snap: &serde_json::Value| -> u64 {
        snap["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["messages"].as_u64().unwrap())
            .sum()
    };
    let snaps = mailfleet_json(c, &["backup", "list"]);
    let held_before = messages(snaps.as_array().unwrap().last().unwrap());
    let p = &stack.info.ports;
    let tag = crate::common::unique_tag("scheduled");
    crate::common::send(p.smtp, "bob@example.com", "alice@example.com", &tag).await;
    let got = crate::common::wait_for_mail(
        p.stores[0].imap,
        "alice@example.com",
        &tag,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(got.len(), 1, "the mail never arrived");
    // Two more runs: the second surely started after the delivery.
    let before = finished(0).unwrap().len();
    let runs = wait(before + 2, "the schedule stopped after its first runs");
    for r in &runs {
        assert_eq!(r["who"], "schedule", "{r}");
        assert_eq!(r["via"], "serve", "{r}");
        assert_eq!(r["result"], "ok", "{r}");
    }
    let snaps = mailfleet_json(c, &["backup", "list"]);
    let snaps = snaps.as_array().unwrap();
    assert!(
        snaps.len() >= runs.len(),
        "{} runs, {} snapshots",
        runs.len(),
        snaps.len()
    );
    assert_eq!(
        messages(snaps.last().unwrap()),
        held_before + 1,
        "the newest snapshot lacks the mail delivered between runs"
    );
}

//! Defect: the resource read on a server took a `stat` that another probe had started a
//! moment before (two probes at once: a monitor and an admin's check, or two stacks' servers
//! on one machine as in these tests) for one stuck since an earlier round, and reported the
//! disk CRITICAL "still not answering". Only a `stat` running longer than the deadline is.

use std::process::Command;

use crate::common::ChildGuard;

#[tokio::test(flavor = "multi_thread")]
async fn a_stat_another_probe_just_started_is_not_taken_for_a_stuck_one() {
    let stack = mailfleet_stack::TestStack::start().await.expect("stack");
    let path = stack.config_path();
    // Another probe's `stat` of / on store1 (reached over SSH, as root, TMPDIR unset),
    // started just now and still running: its marker, as the resource script keeps it.
    let marks = std::path::Path::new("/tmp/mailfleet-stuck-0");
    std::fs::create_dir_all(marks).unwrap();
    let key = Command::new("sh")
        .args(["-c", "printf '%s' / | cksum | cut -d' ' -f1"])
        .output()
        .unwrap();
    let key = String::from_utf8(key.stdout).unwrap().trim().to_string();
    let running = ChildGuard(Command::new("sleep").arg("60").spawn().unwrap());
    let marker = marks.join(&key);
    let uptime = std::fs::read_to_string("/proc/uptime").unwrap();
    let now: f64 = uptime.split_whitespace().next().unwrap().parse().unwrap();
    let start = (now * 100.0) as u64;
    std::fs::write(&marker, format!("{} {start}\n", running.0.id())).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mailfleet"))
        .args([
            "--config",
            path.to_str().unwrap(),
            "--json",
            "probe",
            "store1",
        ])
        .output()
        .unwrap();
    let outcomes: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    let disk = outcomes
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["server"] == "store1" && o["check"] == "disk:/")
        .cloned()
        .unwrap_or_else(|| panic!("no disk:/ for store1: {outcomes:#}"));
    assert!(
        disk["message"].as_str().unwrap().contains("% used"),
        "{disk:#}"
    );
    drop(running);
}

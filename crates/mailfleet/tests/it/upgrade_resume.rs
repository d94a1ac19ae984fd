//! `upgrade run` killed with SIGKILL at random moments, then `upgrade resume`: each time the
//! run ends done, every server at the new version, each upgraded exactly once (dpkg's own log
//! in its package root has one `upgrade` of mf-tools to that version), and every server's step
//! passed its gates before and after (none skipped by the resume).

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::mailfleet_json;
use crate::upgrade_run::{ORDER, prepare, publish, versions};
use serde_json::Value;

/// How many times dpkg upgraded mf-tools to `version` on `server`.
fn upgrades(config: &mailfleet_core::Config, server: &str, version: &str) -> usize {
    let root = config
        .fleet
        .server(server)
        .unwrap()
        .package_root
        .clone()
        .unwrap();
    std::fs::read_to_string(root.join("var/log/dpkg.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(" upgrade mf-tools:all ") && l.ends_with(&format!(" {version}")))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_anywhere_resumes_without_upgrading_twice_or_skipping_a_gate() {
    let stack = crate::common::backed_up_stack().await;
    let config = stack.config().unwrap();
    let path = prepare(&stack, &config);
    let c = path.to_str().unwrap();
    let repo = stack.base().join("apt-repo");
    // A run takes some 30-60 s here: kill it early, in the middle, and late.
    let seed = std::process::id() as u64;
    // Round 3 is killed in the middle of store1's drain, a move of its accounts open (found by
    // CI: the resumed drain started a new batch beside the open move and halted); round 4 in
    // its undrain, the last move back switched in the directory but not yet unlocked (found
    // by CI: the resumed undrain found nothing left to move back and left the account locked).
    for (round, version) in ["1.1", "1.2", "1.3", "1.4", "1.5"].iter().enumerate() {
        if *version != "1.1" {
            publish(&repo, version);
        }
        let at = Duration::from_millis(2_000 + (seed * 7919 + round as u64 * 104_729) % 40_000);
        let mut child = Command::new(env!("CARGO_BIN_EXE_mailfleet"))
            .args(["--config", c, "upgrade", "run", "--packages", "mf-tools"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if round == 3 {
            let deadline = std::time::Instant::now() + Duration::from_secs(300);
            loop {
                let s = mailfleet_json(c, &["upgrade", "status"]);
                let moving = mailfleet_json(c, &["move", "status"])["moves"]
                    .as_array()
                    .is_some_and(|m| {
                        m.iter()
                            .any(|m| m["phase"] == "copying" || m["phase"] == "locked")
                    });
                if s["steps"][5]["phase"] == "gated" && moving {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "store1's drain never seen: {s:#}"
                );
                assert!(
                    child.try_wait().unwrap().is_none(),
                    "the run ended first: {s:#}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        } else if round == 4 {
            wait_for_last_move_back_switched(&config, c, &mut child).await;
        } else {
            tokio::time::sleep(at).await;
        }
        let finished_first = child.try_wait().unwrap().is_some();
        child.kill().unwrap();
        child.wait().unwrap();
        let before = mailfleet_json(c, &["upgrade", "status"]);
        let phases: Vec<String> = before["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["phase"].as_str().unwrap().to_string())
            .collect();
        eprintln!("round {round}: killed at {at:?} (finished first: {finished_first}): {phases:?}");
        if before["state"] != "done" {
            let resumed = mailfleet_json(c, &["upgrade", "resume"]);
            assert_eq!(resumed["state"], "done", "round {round}: {resumed:#}");
        }
        let run = mailfleet_json(c, &["upgrade", "status"]);
        assert_eq!(run["state"], "done", "{run:#}");
        for (s, v) in versions(&config) {
            assert_eq!(&v, version, "round {round}: {s}");
            assert_eq!(
                upgrades(&config, &s, version),
                1,
                "round {round}: {s} upgraded twice or never"
            );
        }
        for step in run["steps"].as_array().unwrap() {
            let out = step["output"].as_str().unwrap();
            assert!(
                out.contains("gate before: every probe OK")
                    && out.contains("gate after: every probe OK"),
                "round {round}: a gate of {} is missing:\n{out}",
                step["server"]
            );
        }
        assert_eq!(run["steps"].as_array().unwrap().len(), ORDER.len());
        let locked = mailfleet_json(c, &["accounts", "list", "--locked"]);
        assert_eq!(locked, serde_json::json!([]), "round {round}: left locked");
    }
}

/// Waits until store1's undrain has its last moves back to store1 switched in the directory
/// but not yet recorded as switched: the account on store1 and still locked while routing
/// is published to every MTA, the proxy and the stores (some hundreds of milliseconds). The
/// move journal is read directly, the directory through `accounts show`.
async fn wait_for_last_move_back_switched(
    config: &mailfleet_core::Config,
    c: &str,
    child: &mut std::process::Child,
) {
    let db = config.data_dir.join("moves.db");
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let mut undraining = false;
    loop {
        if !undraining {
            let s = mailfleet_json(c, &["upgrade", "status"]);
            undraining = s["steps"][5]["phase"] == "soaked";
        }
        if undraining && db.exists() {
            let conn = rusqlite::Connection::open_with_flags(
                &db,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .unwrap();
            let open: Vec<(String, String)> = conn
                .prepare(
                    "SELECT address, phase FROM moves WHERE target = 'store1' \
                     AND phase NOT IN ('done', 'failed', 'aborted')",
                )
                .and_then(|mut q| {
                    q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect::<Result<Vec<_>, _>>()
                })
                .unwrap_or_default();
            if !open.is_empty() && open.iter().all(|(_, p)| p == "verified" || p == "switched") {
                let shown: Vec<Value> = open
                    .iter()
                    .map(|(a, _)| mailfleet_json(c, &["accounts", "show", a]))
                    .collect();
                if shown.iter().all(|a| a["server"] == "store1")
                    && shown.iter().any(|a| a["locked"] == true)
                {
                    eprintln!("round 4: killed with {open:?} switched to store1, still locked");
                    return;
                }
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the last move back to store1 was never seen switched"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its last move back to store1 was seen switched"
        );
        tokio::time::sleep(Duration::from_millis(if undraining { 2 } else { 20 })).await;
    }
}

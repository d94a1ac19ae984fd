//! The gate "no backup of the store runs": while a backup process on this machine holds its
//! lock in the repository naming store2, `upgrade run --servers store2` waits before touching
//! store2 (its step stays pending and says why); once that process is gone, its lock is stale
//! and the run goes on and finishes.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mailfleet_backup::lock::LockInfo;

use crate::common::{ChildGuard, mailfleet_json};

#[tokio::test(flavor = "multi_thread")]
async fn a_store_is_not_updated_while_its_backup_runs() {
    let stack = crate::common::backed_up_stack().await;
    let config = stack.config().unwrap();
    let path = crate::upgrade_run::prepare(&stack, &config);
    let c = path.to_str().unwrap();

    // A backup of store2 running here: a live process's shared lock, as `backup run` writes it.
    let holder = ChildGuard(Command::new("sleep").arg("600").spawn().unwrap());
    let info = LockInfo {
        kind: "shared".into(),
        host: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim()
            .to_string(),
        pid: holder.0.id(),
        time: chrono::Utc::now(),
        servers: vec!["store2".into()],
    };
    // Written where the repository keeps its locks (the demo's is a directory).
    let mailfleet_core::config::RepoLocation::Dir { path: repo } = &config.backup.repository else {
        panic!("the demo's repository is a directory");
    };
    std::fs::write(
        repo.join("locks")
            .join(format!("shared-{}-{}-1", info.host, info.pid)),
        serde_json::to_vec(&info).unwrap(),
    )
    .unwrap();

    let mut run = Command::new(env!("CARGO_BIN_EXE_mailfleet"))
        .args([
            "--config",
            c,
            "--json",
            "upgrade",
            "run",
            "--servers",
            "store2",
        ])
        .args(["--packages", "mf-tools"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = mailfleet_json(c, &["upgrade", "status"]);
        let out = s["steps"][0]["output"].as_str().unwrap_or("").to_string();
        if out.contains("waiting: a backup of store2 runs") {
            assert_eq!(s["steps"][0]["phase"], "pending", "{s:#}");
            assert!(out.contains(&format!("process {}", info.pid)), "{out}");
            break;
        }
        if run.try_wait().unwrap().is_some() {
            let out = run.wait_with_output().unwrap();
            panic!(
                "the run ended: {s:#}\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            Instant::now() < deadline,
            "never waited for the backup: {s:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Still waiting a while later: the lock holds it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = mailfleet_json(c, &["upgrade", "status"]);
    assert_eq!(s["steps"][0]["phase"], "pending", "{s:#}");
    drop(holder);
    let out = run.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let done: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done["state"], "done", "{done:#}");
    let step = done["steps"][0]["output"].as_str().unwrap();
    assert!(step.contains("gate before: every probe OK"), "{step}");
    assert_eq!(crate::upgrade_run::versions(&config)[6].1, "1.1");
}

//! Crash safety: backup runs killed with SIGKILL at random moments leave a repository that
//! verifies, holds no half snapshot, restores its last good snapshot byte for byte, and lets
//! the next run complete. The seed is printed, so a failure can be replayed. Two kills land
//! where the log says a run began training a compression dictionary and merging its local
//! blob index.

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mailfleet_stack::TestStack;

use crate::corpus::{assert_restored, fill, mail_roots, message_files};

/// A small deterministic generator: enough randomness for kill times, replayable by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

fn backup(config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mailfleet"));
    c.args([
        "--config",
        config.to_str().unwrap(),
        "--json",
        "backup",
        "run",
    ])
    .env_remove("MAILFLEET_LOG")
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    c
}

/// Runs a backup and kills it (SIGKILL) as soon as its log has a line containing `marker`;
/// whether it did.
fn kill_at_log_line(config: &Path, marker: &str) -> bool {
    let mut child = backup(config)
        .env("MAILFLEET_LOG", "mailfleet_backup=info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = false;
    for line in std::io::BufReader::new(stderr).lines() {
        let line = line.unwrap_or_default();
        if line.contains(marker) {
            child.kill().unwrap();
            seen = true;
            break;
        }
    }
    child.wait().unwrap();
    seen
}

fn verify(config: &Path, read_data: bool) -> serde_json::Value {
    let mut args = vec![
        "--config",
        config.to_str().unwrap(),
        "--json",
        "backup",
        "verify",
    ];
    if read_data {
        args.push("--read-data");
    }
    let out = crate::common::mailfleet(&args);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(0), "verify: {v:#}");
    v
}

/// Toggles \Seen on a few messages, as a client would: the next snapshot differs.
fn client_activity(root: &Path, rng: &mut Rng) {
    let files: Vec<String> = message_files(root).into_keys().collect();
    for _ in 0..5 {
        let k = &files[(rng.next() as usize) % files.len()];
        let to = match k.strip_suffix(":2,S") {
            Some(base) => base.to_string(),
            None => format!("{k}:2,S"),
        };
        let to = to.replacen("/new/", "/cur/", 1);
        let _ = std::fs::rename(root.join(k), root.join(to));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_runs_leave_a_valid_repository() {
    let stack = TestStack::start().await.expect("stack");
    fill(&stack, 100).await;
    let text = std::fs::read_to_string(stack.config_path()).unwrap();
    let timing = stack.base().join("timing.toml");
    std::fs::write(
        &timing,
        crate::corpus::with_backup(&text, "repository = \"timing-repo\"\n"),
    )
    .unwrap();
    let config = stack.base().join("crash.toml");
    std::fs::write(
        &config,
        crate::corpus::with_backup(&text, "repository = \"crash-repo\"\n"),
    )
    .unwrap();
    // How long a first full run takes: the kills land anywhere in such a run.
    let t = Instant::now();
    assert!(backup(&timing).status().unwrap().success());
    let full = t.elapsed().as_millis() as u64;

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("crash test seed {seed}, a full run takes {full} ms");
    // The first run trains its dictionaries once its snapshot is written, then merges its
    // blobs into the local index: killed in each, the snapshot stands.
    assert!(
        kill_at_log_line(&config, "training a"),
        "the first run trains a dictionary"
    );
    assert_eq!(verify(&config, false)["snapshots"].as_u64(), Some(1));
    client_activity(&mail_roots(&stack)[0], &mut Rng(seed));
    assert!(
        kill_at_log_line(&config, "into the local blob index"),
        "the next run merges what the killed one left in memory"
    );
    assert_eq!(verify(&config, false)["snapshots"].as_u64(), Some(2));
    let mut rng = Rng(seed);
    let mut completed = 0;
    let mut killed = 0;
    let mut snapshots = 2;
    // Kills land within 1.25 times the last run that finished: incremental runs are short.
    let mut window = full;
    for _ in 0..20 {
        let started = Instant::now();
        let mut child = backup(&config).spawn().unwrap();
        let kill_at = Duration::from_millis(rng.next() % (window + window / 4).max(1));
        let finished = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break Some(st);
            }
            if started.elapsed() >= kill_at {
                break None;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        match finished {
            Some(st) => {
                assert!(st.success(), "a run failed on its own");
                completed += 1;
                window = started.elapsed().as_millis() as u64;
            }
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                killed += 1;
            }
        }
        // A killed run may have committed its snapshot just before the kill; either way every
        // snapshot is whole (verify reads them all and every message they reference).
        let v = verify(&config, false);
        let now = v["snapshots"].as_u64().unwrap();
        match finished {
            Some(_) => assert_eq!(now, snapshots + 1, "{v:#}"),
            None => assert!(now == snapshots || now == snapshots + 1, "{v:#}"),
        }
        snapshots = now;
        client_activity(&mail_roots(&stack)[0], &mut rng);
    }
    eprintln!("{killed} runs killed, {completed} completed");
    assert!(killed > 0, "no run was killed (seed {seed})");
    // The next run completes, and its snapshot restores byte for byte.
    assert!(backup(&config).status().unwrap().success());
    // Every snapshot, the killed runs' last good ones included, rebuilds message by message.
    let v = verify(&config, true);
    assert_eq!(v["snapshots"].as_u64().unwrap(), snapshots + 1);
    let out = stack.base().join("restored");
    let out_s = out.to_str().unwrap();
    crate::common::mailfleet_ok(&config, &["restore", "--to", out_s]);
    assert_restored(&stack, &out);
}

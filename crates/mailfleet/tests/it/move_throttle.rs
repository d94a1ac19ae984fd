//! `[move] max_load`: while the stores are busier than the limit (a real load: CPU burners this
//! test starts, niced so that they slow nothing else down, and stops by PID), a move copies
//! nothing and `move status` says which store and why; resumed with a limit above the load,
//! it finishes.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mailfleet_stack::TestStack;

use crate::common::{doveadm_save, mailfleet, mailfleet_json};

const D: Duration = Duration::from_secs(120);

/// The machine's 1-minute load average per CPU (the demo's stores all run here).
fn load_per_cpu() -> f64 {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap();
    let one: f64 = text.split_whitespace().next().unwrap().parse().unwrap();
    one / std::thread::available_parallelism().unwrap().get() as f64
}

/// CPU burners, stopped by their PIDs when dropped.
struct Burners(Vec<Child>);

impl Drop for Burners {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_move_waits_while_a_store_is_busy_and_says_why() {
    let stack = TestStack::start().await.expect("stack");
    for i in 0..5 {
        doveadm_save(
            &stack,
            "store1",
            "alice@example.com",
            "INBOX",
            &format!("Subject: busy {i}\r\nMessage-ID: <busy-{i}@test>\r\n\r\nbody\r\n"),
        );
    }
    // Runnable tasks count in the load average whatever their nice level.
    let cpus = std::thread::available_parallelism().unwrap().get();
    let burners = Burners(
        (0..cpus + 2)
            .map(|_| {
                Command::new("nice")
                    .args(["-n", "19", "yes"])
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect(),
    );
    // The kernel updates the average every 5 s: on an idle machine the burners lift it past
    // 0.3 per CPU within about 15 s.
    let deadline = Instant::now() + D;
    while load_per_cpu() < 0.3 {
        assert!(
            Instant::now() < deadline,
            "the load never rose: {}",
            load_per_cpu()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let base = std::fs::read_to_string(stack.config_path()).unwrap();
    let busy = stack.config_path().with_file_name("busy.toml");
    std::fs::write(&busy, format!("{base}\n[move]\nmax_load = 0.15\n")).unwrap();
    let c = busy.to_str().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailfleet"))
        .args(["--config", c, "move", "alice@example.com", "--to", "store2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let why = loop {
        let s = mailfleet_json(c, &["move", "status"]);
        if let Some(w) = s["moves"][0]["waiting"].as_str() {
            break w.to_string();
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the move ended without waiting: {s:#}"
        );
        assert!(Instant::now() < deadline, "the move never waited: {s:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        why.contains("store1 load") && why.contains("above max_load 0.15"),
        "{why}"
    );
    // Still waiting a recheck later, and nothing copied meanwhile.
    tokio::time::sleep(mailfleet_move::throttle::RECHECK + Duration::from_secs(1)).await;
    assert!(child.try_wait().unwrap().is_none(), "the move went on");
    let copy = stack.base().join("store2/mail/example.com/alice");
    assert!(!copy.exists(), "copied while the stores were busy");
    let s = mailfleet_json(c, &["move", "status"]);
    assert_eq!(s["moves"][0]["phase"], "copying", "{s:#}");
    assert_eq!(s["moves"][0]["passes"], 0, "{s:#}");
    let human = mailfleet(&["--config", c, "move", "status"]);
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(human.contains("waiting: store1 load"), "{human}");

    child.kill().unwrap();
    child.wait().unwrap();
    drop(burners);
    // Resumed with a limit above any load here: it reads the load, goes on and finishes.
    let calm = stack.config_path().with_file_name("calm.toml");
    std::fs::write(&calm, format!("{base}\n[move]\nmax_load = 1000\n")).unwrap();
    let c = calm.to_str().unwrap();
    let r = mailfleet_json(c, &["move", "resume"]);
    assert_eq!(r["moves"][0]["moved"]["to"], "store2", "{r:#}");
    assert_eq!(r["moves"][0]["moved"]["messages"], 5, "{r:#}");
    let s = mailfleet_json(c, &["move", "status"]);
    assert_eq!(s["moves"][0]["phase"], "done", "{s:#}");
    assert!(s["moves"][0]["waiting"].is_null(), "{s:#}");
    let a = mailfleet_json(c, &["accounts", "show", "alice@example.com"]);
    assert_eq!(a["server"], "store2");
}

//! `mailfleet move` killed with SIGKILL at random moments, then `move resume`: each time the
//! account ends on one store with its mailbox exactly as it was (every folder's UIDVALIDITY,
//! UIDNEXT and GUID, every message's UID, GUID, flags, date and POP3 UIDL: nothing lost,
//! nothing doubled), unlocked, no move left open; at the end its user logs in. Also
//! `move abort` of a move killed under its lock, and `move status`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mailfleet_core::Address;
use mailfleet_stack::TestStack;
use mailfleet_stack::demo::DEMO_PASSWORD;

use crate::common::{clock, local, mailfleet, mailfleet_json};

const D: Duration = Duration::from_secs(60);

/// Saves `n` messages into `folder` of alice on store1 with doveadm (the test's own setup).
fn save(stack: &TestStack, folder: &str, n: usize) {
    let conf = stack.base().join("store1").join("dovecot.conf");
    if folder != "INBOX" {
        let st = Command::new("doveadm")
            .arg("-c")
            .arg(&conf)
            .args(["mailbox", "create", "-u", "alice@example.com", folder])
            .status()
            .unwrap();
        assert!(st.success());
    }
    for i in 0..n {
        let message = format!(
            "From: <bob@example.com>\r\nTo: <alice@example.com>\r\nSubject: resume {folder} {i}\r\nMessage-ID: <resume-{i}-{}@test>\r\n\r\n{}\r\n",
            folder.len(),
            "line of body text\r\n".repeat(i % 40)
        );
        crate::common::doveadm_save(stack, "store1", "alice@example.com", folder, &message);
    }
}

/// The worst `locked` outcome of the two stores, and its message.
fn locked_check(config: &str) -> (String, String) {
    let out = mailfleet(&[
        "--config", config, "--json", "probe", "store1", "store2", "--check", "locked",
    ]);
    let outcomes: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    let outcomes = outcomes.as_array().unwrap();
    assert_eq!(outcomes.len(), 2, "{outcomes:#?}");
    let worst = outcomes
        .iter()
        .find(|o| o["state"] != "OK")
        .unwrap_or(&outcomes[0]);
    (
        worst["state"].as_str().unwrap().to_string(),
        worst["message"].as_str().unwrap().to_string(),
    )
}

/// A small generator of random moments (the seed is printed so a failure can be replayed).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_move_killed_anywhere_is_resumed_with_nothing_lost_or_doubled() {
    let stack = TestStack::start().await.expect("stack");
    let config = stack.config().unwrap();
    let path = stack.config_path();
    let c = path.to_str().unwrap();
    save(&stack, "INBOX", 60);
    save(&stack, "Archive 2026", 30);
    save(&stack, "Work Ü", 20);
    let conf1 = stack.base().join("store1").join("dovecot.conf");
    let st = Command::new("doveadm")
        .arg("-c")
        .arg(&conf1)
        .args([
            "flags",
            "add",
            "-u",
            "alice@example.com",
            "\\Seen $Important",
            "mailbox",
            "INBOX",
            "uid",
            "1:20",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let reach = mailfleet_remote::Reach::new();
    let alice = Address::parse("alice@example.com").unwrap();
    let server = |name: &str| config.fleet.server(name).unwrap();
    let before = mailfleet_move::folders(&reach, server("store1"), &alice, D)
        .await
        .unwrap();

    // One whole move first: how long one takes bounds the random moments.
    let t = Instant::now();
    let first = mailfleet_json(c, &["move", "alice@example.com", "--to", "store2"]);
    let whole = t.elapsed();
    assert_eq!(
        first["report"]["moves"][0]["moved"]["to"], "store2",
        "{first:#}"
    );
    let mut on = "store2".to_string();

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("random moments from seed {seed}");
    let mut rng = Lcg(seed);
    let mut outcomes = Vec::new();
    for round in 0..20 {
        let to = if on == "store1" { "store2" } else { "store1" };
        let mut child = Command::new(env!("CARGO_BIN_EXE_mailfleet"))
            .args(["--config", c, "move", "alice@example.com", "--to", to])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let at = Duration::from_millis(rng.below(whole.as_millis() as u64 + 200));
        tokio::time::sleep(at).await;
        child.kill().unwrap();
        child.wait().unwrap();
        let open = mailfleet_json(c, &["move", "status"]);
        let phase = open["moves"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|m| m["address"] == "alice@example.com")
            .map(|m| m["phase"].as_str().unwrap_or("").to_string())
            .unwrap_or_default();

        let resumed = mailfleet(&["--config", c, "move", "resume"]);
        assert!(
            resumed.status.success(),
            "round {round} (killed at {at:?}, phase {phase}): resume failed: {}\n{}",
            String::from_utf8_lossy(&resumed.stdout),
            String::from_utf8_lossy(&resumed.stderr)
        );
        let account = mailfleet_json(c, &["accounts", "show", "alice@example.com"]);
        assert_eq!(account["locked"], false, "round {round}: left locked");
        let now = account["server"].as_str().unwrap().to_string();
        assert!(now == on || now == to, "round {round}: on {now}");
        let status = mailfleet_json(c, &["move", "status"]);
        assert!(
            status["moves"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| ["done", "failed", "aborted"].contains(&m["phase"].as_str().unwrap())),
            "round {round}: a move is still open: {status:#}"
        );
        let after = mailfleet_move::folders(&reach, server(&now), &alice, D)
            .await
            .unwrap();
        let diff = mailfleet_move::compare(&before, &after);
        assert!(
            diff.is_empty(),
            "round {round} (killed at {at:?} in phase {phase}): the mailbox on {now} differs: {diff:?}"
        );
        outcomes.push(format!("{at:?}:{phase}->{now}"));
        on = now;
    }
    eprintln!("rounds: {outcomes:?}");

    // Killed while locked, then aborted: unlocked, left on its source, the copy untouched.
    let to = if on == "store1" { "store2" } else { "store1" };
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailfleet"))
        .args(["--config", c, "move", "alice@example.com", "--to", to])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + D;
    loop {
        let a = mailfleet_json(c, &["accounts", "show", "alice@example.com"]);
        if a["locked"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "the move never locked alice");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the move ended before it was seen locked"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Left locked by a dead move: the probe says so (a CRITICAL the monitor alarms on once
    // it lasts its confirm rounds), and again OK once the abort unlocked it.
    let (state, message) = locked_check(c);
    assert_eq!(state, "CRITICAL", "{message}");
    assert!(message.contains("alice@example.com"), "{message}");
    let aborted = mailfleet_json(c, &["move", "abort", "alice@example.com"]);
    let (state, message) = locked_check(c);
    assert_eq!(state, "OK", "{message}");
    let phase = aborted[0]["phase"].as_str().unwrap().to_string();
    let account = mailfleet_json(c, &["accounts", "show", "alice@example.com"]);
    assert_eq!(account["locked"], false);
    // Killed after its switch, an abort finishes the move instead.
    match phase.as_str() {
        "aborted" => assert_eq!(account["server"], on.as_str()),
        "done" => assert_eq!(account["server"], to),
        p => panic!("abort left the move {p}"),
    }
    let now = account["server"].as_str().unwrap();
    let after = mailfleet_move::folders(&reach, server(now), &alice, D)
        .await
        .unwrap();
    assert!(mailfleet_move::compare(&before, &after).is_empty());

    // The user logs in where the directory says (Dovecot rereads its passwd-file within a
    // second of the unlock).
    let port = server(now).ports.imap.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match mailfleet_mailclient::imap::Imap::login(
            &local(port),
            "alice@example.com",
            DEMO_PASSWORD,
            &clock(),
        )
        .await
        {
            Ok(_) => break,
            Err(e) => assert!(
                Instant::now() < deadline,
                "alice cannot log in on {now}: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = mailfleet(&["--config", c, "move", "status", "--all"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("alice@example.com") && text.contains("done"),
        "{text}"
    );
}

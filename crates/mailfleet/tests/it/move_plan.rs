//! Moves by domain and store drains on the demo's real stores: a target whose mail
//! filesystem lacks the room (a small tmpfs under its Maildirs) is refused before anything is
//! copied; `move --domain example.org --to store1` and `move drain store2` put every account
//! where `--plan` said, store2 ends with none (and nowhere while store1 is marked for
//! upgrade); `move back store2` returns them. Each user gets
//! the admin's notice before the move, the admin a summary after the batch.

use std::process::Command;

use mailfleet_stack::TestStack;
use serde_json::Value;

use crate::common::mailfleet;

const WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Saves `n` messages of about `size` bytes for `user` on `store`.
fn save(stack: &TestStack, store: &str, user: &str, n: usize, size: usize) {
    for i in 0..n {
        let message = format!(
            "From: <bob@example.com>\r\nTo: <{user}>\r\nSubject: plan {i}\r\nMessage-ID: <plan-{i}-{user}>\r\n\r\n{}\r\n",
            "x".repeat(76).repeat(size / 78)
        );
        crate::common::doveadm_save(stack, store, user, "INBOX", &message);
    }
}

fn run(config: &str, args: &[&str]) -> (Option<i32>, Value, String) {
    let mut all = vec!["--config", config, "--json"];
    all.extend_from_slice(args);
    let out = mailfleet(&all);
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code(),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn where_is(config: &str, address: &str) -> String {
    let (code, a, err) = run(config, &["accounts", "show", address]);
    assert_eq!(code, Some(0), "{err}");
    a["server"].as_str().unwrap().to_string()
}

/// What a plan says: account to target.
fn targets(plan: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = plan["plan"]["moves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["address"].as_str().unwrap().to_string(),
                m["target"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Unmounts the tmpfs even when an assertion fails.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn domains_and_drains_go_where_the_plan_says_and_a_full_target_is_refused() {
    let stack = TestStack::start().await.expect("stack");
    // Notices: a summary of each batch to bob, a mail to each user before their move.
    std::fs::write(
        stack.base().join("notice.txt"),
        "Subject: Your mailbox moves {when}\n\nHello {address}, for about {lock} you cannot log in.\n",
    )
    .unwrap();
    let path = stack.base().join("notices.toml");
    std::fs::write(
        &path,
        std::fs::read_to_string(stack.config_path()).unwrap()
            + "\n[monitor]\nnotify_from = \"mailfleet@example.com\"\n\n[move]\nnotify_email = [\"bob@example.com\"]\nuser_notice = \"notice.txt\"\n",
    )
    .unwrap();
    let c = path.to_str().unwrap();
    save(&stack, "store2", "carol@example.org", 20, 20_000);
    save(&stack, "store2", "dave@example.org", 5, 2_000);
    save(&stack, "store2", "erin@example.com", 5, 2_000);

    // store1's Maildirs on a 256 KiB filesystem: carol's 400 KB do not fit.
    let root = stack.base().join("store1").join("mail");
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs"])
        .arg(&root)
        .status()
        .unwrap();
    assert!(st.success(), "mount tmpfs");
    let mounted = Mounted(root.clone());
    let (code, refused, err) = run(c, &["move", "--domain", "example.org", "--to", "store1"]);
    assert_eq!(code, Some(3), "{refused:#} {err}");
    let why = refused["plan"]["refused"].to_string();
    assert!(
        why.contains("carol@example.org") && why.contains("no store has room"),
        "{refused:#}"
    );
    assert!(refused["report"].is_null(), "something ran: {refused:#}");
    // Nothing was copied nor recorded.
    let incoming = std::fs::read_to_string(stack.base().join("store1").join("users.incoming"));
    assert!(
        !incoming.unwrap_or_default().contains("carol"),
        "the target was told of carol"
    );
    let (_, status, _) = run(c, &["move", "status"]);
    assert_eq!(status["moves"], serde_json::json!([]), "{status:#}");
    drop(mounted);

    // The domain goes to store1, as planned.
    let (code, planned, err) = run(
        c,
        &[
            "move",
            "--domain",
            "example.org",
            "--to",
            "store1",
            "--plan",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let plan = targets(&planned);
    assert_eq!(
        plan,
        [
            ("carol@example.org".to_string(), "store1".to_string()),
            ("dave@example.org".to_string(), "store1".to_string()),
            ("probe@example.org".to_string(), "store1".to_string()),
        ]
    );
    assert!(planned["report"].is_null(), "--plan moved something");
    assert_eq!(where_is(c, "carol@example.org"), "store2");
    let (code, done, err) = run(c, &["move", "--domain", "example.org", "--to", "store1"]);
    assert_eq!(code, Some(0), "{done:#} {err}");
    assert_eq!(done["notices"], serde_json::json!([]), "{done:#}");
    for (a, t) in &plan {
        assert_eq!(&where_is(c, a), t, "{a}");
    }
    // carol's notice, sent before her move, moved with her mailbox (or waited for it).
    let store1 = stack.info.ports.stores[0].imap;
    let notice =
        crate::common::wait_for_mail(store1, "carol@example.org", "Your mailbox moves", WAIT).await;
    assert_eq!(notice.len(), 1, "carol's notice");
    let text = String::from_utf8_lossy(&notice[0]);
    assert!(
        text.contains("Hello carol@example.org, for about 5 seconds"),
        "{text}"
    );
    let summary = crate::common::wait_for_mail(
        store1,
        "bob@example.com",
        "[mailfleet] move batch: 3 moved, 0 failed",
        WAIT,
    )
    .await;
    assert_eq!(summary.len(), 1, "the admin's summary");
    let text = String::from_utf8_lossy(&summary[0]);
    assert!(
        text.contains("carol@example.org: store2 -> store1"),
        "{text}"
    );

    // store1 marked for upgrade: a drain of store2 has nowhere to go, and says why.
    let (code, marks, err) = run(
        c,
        &["upgrade", "mark", "store1", "--reason", "dovecot 2.3.21"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(marks[0]["server"], "store1", "{marks:#}");
    let (code, refused, err) = run(c, &["move", "drain", "store2", "--plan"]);
    assert_eq!(code, Some(3), "{refused:#} {err}");
    let why = refused.to_string();
    assert!(
        why.contains("marked for upgrade and not upgraded yet (dovecot 2.3.21)"),
        "{refused:#}"
    );
    let (code, marks, err) = run(c, &["upgrade", "unmark", "store1"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(marks, serde_json::json!([]));

    // Draining store2: what is left there goes to store1, the one other store.
    let (code, planned, err) = run(c, &["move", "drain", "store2", "--plan"]);
    assert_eq!(code, Some(0), "{err}");
    let plan = targets(&planned);
    assert_eq!(
        plan,
        [("erin@example.com".to_string(), "store1".to_string())]
    );
    let (code, done, err) = run(c, &["move", "drain", "store2"]);
    assert_eq!(code, Some(0), "{done:#} {err}");
    let (_, left, _) = run(c, &["accounts", "list", "--server", "store2"]);
    assert_eq!(left, serde_json::json!([]), "store2 is not empty");
    assert_eq!(where_is(c, "erin@example.com"), "store1");

    // Back: every account a move took off store2 returns.
    let (code, planned, err) = run(c, &["move", "back", "store2", "--plan"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(targets(&planned).len(), 4, "{planned:#}");
    let (code, done, err) = run(c, &["move", "back", "store2"]);
    assert_eq!(code, Some(0), "{done:#} {err}");
    for a in [
        "carol@example.org",
        "dave@example.org",
        "probe@example.org",
        "erin@example.com",
    ] {
        assert_eq!(where_is(c, a), "store2", "{a}");
    }
}

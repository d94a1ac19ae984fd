//! `mailfleet report` on logs the demo stack really wrote: local and cross-store deliveries,
//! local submissions, rejected, deferred and bounced mail, IMAP logins good and bad. Its
//! totals equal pflogsumm's on the same Postfix log, and match what the test did.

use std::process::Command;
use std::time::Duration;

use mailfleet_mailclient::imap::Imap;
use mailfleet_stack::TestStack;

use crate::common::{mailfleet, mailfleet_ok, send, unique_tag, wait_for_mail};

const SENT: usize = 120;

/// Messages in the queue, from `postqueue -j` (one JSON object per line).
fn queued(stack: &TestStack) -> usize {
    let out = Command::new("postqueue")
        .arg("-c")
        .arg(stack.base().join("mx1/conf"))
        .arg("-j")
        .output()
        .expect("postqueue");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

async fn wait_queue(stack: &TestStack, n: usize) {
    let end = std::time::Instant::now() + Duration::from_secs(60);
    while queued(stack) != n {
        if std::time::Instant::now() >= end {
            // What is stuck, and what Postfix logged of it.
            let queue = String::from_utf8_lossy(
                &Command::new("postqueue")
                    .arg("-c")
                    .arg(stack.base().join("mx1/conf"))
                    .arg("-j")
                    .output()
                    .expect("postqueue")
                    .stdout,
            )
            .into_owned();
            let ids: Vec<String> = queue
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter_map(|v| v["queue_id"].as_str().map(str::to_string))
                .collect();
            let log =
                std::fs::read_to_string(stack.base().join("log/postfix.log")).unwrap_or_default();
            let about: Vec<&str> = log
                .lines()
                .filter(|l| ids.iter().any(|id| l.contains(id.as_str())))
                .collect();
            panic!(
                "queue never reached {n}:\n{queue}--- postfix.log of those ---\n{}",
                about.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sendmail(stack: &TestStack, from: &str, to: &str, subject: &str) {
    let mut child = Command::new("sendmail")
        .arg("-C")
        .arg(stack.base().join("mx1/conf"))
        .args(["-f", from, to])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("sendmail");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("Subject: {subject}\n\nlocal submission\n").as_bytes())
        .expect("write");
    assert!(child.wait().expect("wait").success());
}

#[tokio::test]
async fn report_on_real_demo_logs_matches_pflogsumm() {
    let stack = TestStack::start().await.expect("stack");
    let p = stack.info.ports.clone();
    let config = stack.config_path();
    let users = [
        "alice@example.com",
        "bob@example.com",
        "carol@example.org",
        "dave@example.org",
        "erin@example.com",
    ];
    let tag = unique_tag("report");
    for i in 0..SENT {
        send(
            p.smtp,
            users[i % 5],
            users[(i + 1) % 5],
            &format!("{tag} {i}"),
        )
        .await;
    }
    // Local submissions through the sendmail binary: counted as bob's sending.
    for i in 0..5 {
        sendmail(
            &stack,
            "bob@example.com",
            "alice@example.com",
            &format!("{tag} local {i}"),
        );
    }
    // Rejected at RCPT: unknown recipients.
    for i in 0..10 {
        let mut s = crate::common::smtp(p.smtp).await;
        s.mail_from("alice@example.com").await.unwrap();
        let refused = s.rcpt_to(&format!("nobody{i}@example.com")).await;
        assert!(
            refused.as_ref().is_err_and(|e| e.is_permanent()),
            "unknown recipient accepted: {refused:?}"
        );
        s.quit().await;
    }
    // Bounced: the directory routes ghost@ to store1, but store1 does not know it. Adding it
    // reloads Postfix: the mail above is delivered first, or a reload in the middle of its
    // deliveries leaves it for the queue manager's next scan, minutes later.
    wait_queue(&stack, 0).await;
    mailfleet_ok(
        &config,
        &["accounts", "add", "ghost@example.com", "--server", "store1"],
    );
    let users_file = stack.base().join("store1/users");
    let kept: String = std::fs::read_to_string(&users_file)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("ghost@"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&users_file, kept).unwrap();
    send(
        p.smtp,
        "alice@example.com",
        "ghost@example.com",
        &format!("{tag} ghost"),
    )
    .await;
    wait_queue(&stack, 0).await;
    assert_eq!(
        wait_for_mail(
            p.stores[0].imap,
            "alice@example.com",
            "Undelivered",
            Duration::from_secs(30)
        )
        .await
        .len(),
        1,
        "the bounce came back to alice"
    );
    // IMAP logins: good and bad.
    for _ in 0..3 {
        crate::common::imap_find(p.stores[0].imap, "alice@example.com", "nothing").await;
    }
    for _ in 0..2 {
        let at = crate::common::local(p.stores[0].imap);
        let clock = crate::common::clock();
        let refused = Imap::login(&at, "alice@example.com", "wrong", &clock).await;
        assert!(
            refused.as_ref().is_err_and(|e| e.is_permanent()),
            "a wrong password logged in: {:?}",
            refused.err()
        );
    }
    // Deferred: store2 stops answering LMTP.
    mailfleet_stack::dovecot::stop(&mailfleet_stack::Layout::new(&stack.base()), "store2")
        .expect("stop store2");
    for i in 0..3 {
        send(
            p.smtp,
            "alice@example.com",
            "carol@example.org",
            &format!("{tag} deferred {i}"),
        )
        .await;
    }
    let end = std::time::Instant::now() + Duration::from_secs(30);
    let log = stack.base().join("log/postfix.log");
    while std::fs::read_to_string(&log)
        .unwrap_or_default()
        .matches("status=deferred")
        .count()
        < 3
    {
        assert!(std::time::Instant::now() < end, "no deferral logged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let files =
        ["postfix.log", "store1.log", "store2.log"].map(|f| stack.base().join("log").join(f));
    let args: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
    let mut cmd = vec!["report", "--json"];
    cmd.extend(&args);
    let out = mailfleet(&cmd);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = &report["totals"];

    // What the test did.
    assert_eq!(
        t["received"],
        SENT + 5 + 1 + 3,
        "smtp + sendmail + ghost + deferred"
    );
    assert_eq!(t["rejected"], 10);
    assert_eq!(t["bounced"], 1);
    assert_eq!(t["deferred"], 3);
    assert!(
        t["delivered"].as_u64().unwrap() >= (SENT + 5 + 1) as u64,
        "{t}"
    );
    let alice = report["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["account"] == "alice@example.com")
        .unwrap();
    assert_eq!(
        alice["logins"]["imap"].as_u64().unwrap(),
        3 + 1,
        "three logins here, one by wait_for_mail: {alice}"
    );
    assert_eq!(alice["failed_logins"], 2);
    let bob = report["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["account"] == "bob@example.com")
        .unwrap();
    assert_eq!(bob["sent"], 5, "bob's local submissions: {bob}");
    assert_eq!(bob["sent_internal"], 5);
    let machines: Vec<&str> = report["machines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["host"].as_str().unwrap())
        .collect();
    assert!(
        machines.contains(&"mx1") && machines.contains(&"store1"),
        "{machines:?}"
    );

    // pflogsumm on the same Postfix log: every total equal.
    let pf = Command::new("pflogsumm")
        .arg(&files[0])
        .output()
        .expect("pflogsumm");
    let theirs = mailfleet_report::pflogsumm::grand_totals(&String::from_utf8_lossy(&pf.stdout));
    assert_eq!(theirs.len(), 16, "every total read: {theirs:?}");
    for (field, shown) in theirs {
        let ours = t[field].as_u64().unwrap();
        assert!(
            shown.matches(ours),
            "{field}: mailfleet {ours}, pflogsumm {shown:?}"
        );
    }
}

//! The lock of a mailbox move, through the real MTAs and store: while `alice` is locked, mail
//! for her through either MTA is accepted and waits in that MTA's queue (never refused at
//! RCPT, never bounced) and her IMAP login is refused with the reason; the unlock flushes both
//! queues, so the mail is in her mailbox at once, not at Postfix's next retry minutes later.
//! Her unlock delivers only her mail: erin, locked too, keeps hers queued until her own unlock
//! (a whole-queue flush would push it into erin's old store in the middle of her move).

use std::time::Duration;

use mailfleet_mailclient::imap::Imap;
use mailfleet_stack::TestStack;
use mailfleet_stack::demo::DEMO_PASSWORD;

use crate::common::{clock, local, mailfleet_ok, send_via, unique_tag, wait_for_mail};

/// An MTA's queue: (queue name, queue ID) per message.
fn queue(stack: &TestStack, mta: &str) -> Vec<(String, String)> {
    crate::policy::queue_of(stack, mta, "queue_id")
}

#[tokio::test]
async fn a_locked_account_waits_in_both_queues_and_the_unlock_delivers_at_once() {
    let stack = TestStack::start().await.expect("stack");
    let config = stack.config().unwrap();
    let path = stack.config_path();
    mailfleet_ok(&path, &["accounts", "lock", "alice@example.com"]);
    mailfleet_ok(&path, &["accounts", "lock", "erin@example.com"]);
    let tag = unique_tag("locked");
    let mx1 = config.fleet.server("mx1").unwrap();
    send_via(
        &mx1.host,
        mx1.ports.smtp.unwrap(),
        "bob@example.com",
        "erin@example.com",
        &format!("{tag} for erin"),
    )
    .await;
    for mta in ["mx1", "mx2"] {
        let mx = config.fleet.server(mta).unwrap();
        // Accepted: send_via fails the test on any refusal.
        send_via(
            &mx.host,
            mx.ports.smtp.unwrap(),
            "bob@example.com",
            "alice@example.com",
            &format!("{tag} via {mta}"),
        )
        .await;
    }
    let imap = stack.info.ports.stores[0].imap;
    for mta in ["mx1", "mx2"] {
        let end = std::time::Instant::now() + Duration::from_secs(30);
        let want = if mta == "mx1" { 2 } else { 1 };
        while queue(&stack, mta)
            .iter()
            .filter(|(q, _)| q == "deferred")
            .count()
            < want
        {
            assert!(
                std::time::Instant::now() < end,
                "{mta} never deferred the mail: {:?}",
                queue(&stack, mta)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let refused = Imap::login(&local(imap), "alice@example.com", DEMO_PASSWORD, &clock()).await;
    let e = refused.err().expect("a locked account cannot log in");
    assert!(e.to_string().contains("Mailbox-being-moved"), "{e}");
    mailfleet_ok(&path, &["accounts", "unlock", "alice@example.com"]);
    // Dovecot looks at the changed passwd-file at most once a second.
    let r = login_until(imap, Duration::from_secs(5), |r| r.is_ok()).await;
    assert!(r.is_ok(), "still refused after the unlock: {r:?}");
    // Flushed by the unlock: Postfix's own retry would be 5 minutes away (minimal_backoff_time).
    for mta in ["mx1", "mx2"] {
        let got = wait_for_mail(
            imap,
            "alice@example.com",
            &format!("{tag} via {mta}"),
            Duration::from_secs(60),
        )
        .await;
        assert_eq!(got.len(), 1, "the mail via {mta} after the unlock");
    }
    assert!(
        queue(&stack, "mx2").is_empty(),
        "{:?}",
        queue(&stack, "mx2")
    );
    // erin's mail was left alone by alice's unlock: still queued, a while later too.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let left = queue(&stack, "mx1");
    assert_eq!(
        left.len(),
        1,
        "erin's mail left mx1 while she is locked: {left:?}"
    );
    mailfleet_ok(&path, &["accounts", "unlock", "erin@example.com"]);
    let end = std::time::Instant::now() + Duration::from_secs(60);
    while !queue(&stack, "mx1").is_empty() {
        assert!(
            std::time::Instant::now() < end,
            "erin's unlock did not deliver her mail"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = std::fs::read_to_string(stack.base().join("log/postfix.log")).unwrap();
    assert!(!log.contains("status=bounced"), "nothing bounced");
}

/// Logs in as alice on store1 until `ok` says the answer is the one awaited, or `within`.
async fn login_until(
    imap: u16,
    within: Duration,
    ok: impl Fn(&Result<(), String>) -> bool,
) -> Result<(), String> {
    let end = std::time::Instant::now() + within;
    loop {
        let r = Imap::login(&local(imap), "alice@example.com", DEMO_PASSWORD, &clock())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        if ok(&r) || std::time::Instant::now() >= end {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

//! `mailfleet move` of one account between the demo's real stores, over SSH: an IMAP client
//! logged in through the proxy is ended at the lock, a new login through it lands on the new
//! store, mail sent before, during and after the move
//! ends up on the new store exactly once with the UIDs, UIDVALIDITY, flags and keywords it had,
//! the directory and both MTAs' routing follow, nothing bounces; moving it onto the store it
//! is on is skipped.

use std::time::Duration;

use mailfleet_core::Address;
use mailfleet_mailclient::imap::Imap;
use mailfleet_stack::TestStack;
use mailfleet_stack::demo::DEMO_PASSWORD;

use crate::common::{clock, local, mailfleet, mailfleet_json, send_via, unique_tag, wait_for_mail};

#[tokio::test(flavor = "multi_thread")]
async fn an_account_moves_live_and_keeps_everything() {
    let stack = TestStack::start().await.expect("stack");
    let config = stack.config().unwrap();
    let path = stack.config_path();
    let c = path.to_str().unwrap();
    let (imap1, imap2) = (
        stack.info.ports.stores[0].imap,
        stack.info.ports.stores[1].imap,
    );
    let mx1 = config.fleet.server("mx1").unwrap();
    let mx2 = config.fleet.server("mx2").unwrap();
    let tag = unique_tag("move");
    // Mail in INBOX and in a nested folder with a non-ASCII name, some flagged.
    for i in 0..40 {
        send_via(
            &mx1.host,
            mx1.ports.smtp.unwrap(),
            "bob@example.com",
            "alice@example.com",
            &format!("{tag} before {i}"),
        )
        .await;
    }
    let got = wait_for_mail(
        imap1,
        "alice@example.com",
        &format!("{tag} before 39"),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(got.len(), 1);
    // The user works through the proxy, as users do: one server name whatever the store.
    let proxy = stack.info.ports.proxy.imap;
    let mut user = Imap::login(&local(proxy), "alice@example.com", DEMO_PASSWORD, &clock())
        .await
        .unwrap();
    // "Archiv Ü" and "Archiv Ü.2026" in IMAP's modified UTF-7 (Maildir++ nests at '.').
    for folder in ["Archiv &ANw-", "Archiv &ANw-.2026"] {
        // Once (1 run in ~15) Dovecot answered ALREADYEXISTS to the second CREATE of a
        // fresh mailbox; not understood yet, and not what this test is about.
        if let Err(e) = user.create(folder).await {
            assert!(
                e.to_string().contains("ALREADYEXISTS"),
                "CREATE {folder}: {e}"
            );
        }
    }
    user.select("INBOX").await.unwrap();
    user.uid_store("1:10", "+FLAGS.SILENT (\\Flagged $Project)")
        .await
        .unwrap();
    user.copy("11:20", "Archiv &ANw-").await.unwrap();
    user.copy("21:25", "Archiv &ANw-.2026").await.unwrap();
    let reach = mailfleet_remote::Reach::new();
    let alice = Address::parse("alice@example.com").unwrap();
    let (store1, store2) = (
        config.fleet.server("store1").unwrap(),
        config.fleet.server("store2").unwrap(),
    );
    let before = mailfleet_move::folders(&reach, store1, &alice, Duration::from_secs(60))
        .await
        .unwrap();

    // Mail keeps coming during the move, through both MTAs.
    let sender = {
        let (h1, p1, h2, p2) = (
            mx1.host.clone(),
            mx1.ports.smtp.unwrap(),
            mx2.host.clone(),
            mx2.ports.smtp.unwrap(),
        );
        let tag = tag.clone();
        tokio::spawn(async move {
            for i in 0..20 {
                let (h, p) = if i % 2 == 0 { (&h1, p1) } else { (&h2, p2) };
                send_via(
                    h,
                    p,
                    "bob@example.com",
                    "alice@example.com",
                    &format!("{tag} during <{i}>"),
                )
                .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let out = mailfleet(&[
        "--config",
        c,
        "--json",
        "move",
        "alice@example.com",
        "--to",
        "store2",
    ]);
    sender.await.unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["report"]["moves"][0]["moved"]["to"], "store2",
        "{report:#}"
    );
    // The session on the old store was ended at the lock.
    assert!(
        user.noop().await.is_err(),
        "the IMAP session survived the lock"
    );

    // Everything from before is on store2 as it was: UIDs, UIDVALIDITY, GUIDs, flags.
    let after = mailfleet_move::folders(&reach, store2, &alice, Duration::from_secs(60))
        .await
        .unwrap();
    for (name, f) in &before {
        let g = &after[name];
        assert_eq!(
            (&f.uidvalidity, &f.guid),
            (&g.uidvalidity, &g.guid),
            "{name}"
        );
        for (uid, m) in &f.mail {
            assert_eq!(g.mail.get(uid), Some(m), "{name} UID {uid}");
        }
    }
    assert_eq!(after["Archiv Ü"].messages, 10);
    assert_eq!(after["Archiv Ü.2026"].messages, 5);
    assert!(after["INBOX"].mail[&3].contains("$Project"));
    // Mail sent during the move, and mail sent now, each arrive once on store2.
    send_via(
        &mx2.host,
        mx2.ports.smtp.unwrap(),
        "bob@example.com",
        "alice@example.com",
        &format!("{tag} after"),
    )
    .await;
    for i in (0..20)
        .map(|i| format!("during <{i}>"))
        .chain(["after".to_string()])
    {
        let got = wait_for_mail(
            imap2,
            "alice@example.com",
            &format!("{tag} {i}"),
            Duration::from_secs(60),
        )
        .await;
        assert_eq!(got.len(), 1, "{tag} {i} on store2");
    }
    // A new login through the proxy lands on store2 (the proxy rereads its file within a
    // second of the switch).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let via_proxy = loop {
        match Imap::login(&local(proxy), "alice@example.com", DEMO_PASSWORD, &clock()).await {
            Ok(s) => break s,
            Err(e) => assert!(
                std::time::Instant::now() < deadline,
                "no login through the proxy: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    via_proxy.logout().await;
    let through =
        crate::common::imap_find(proxy, "alice@example.com", &format!("{tag} after")).await;
    assert_eq!(through.len(), 1, "the proxy did not take alice to store2");
    let total = crate::common::imap_find(imap2, "alice@example.com", &tag).await;
    assert_eq!(total.len(), 40 + 20 + 1, "each message once");
    let dir = mailfleet_json(c, &["accounts", "show", "alice@example.com"]);
    assert_eq!(dir["server"], "store2", "{dir:#}");
    assert_eq!(dir["locked"], false, "{dir:#}");
    for mta in ["postfix.log", "postfix-mx2.log"] {
        let log = std::fs::read_to_string(stack.base().join("log").join(mta)).unwrap();
        assert!(!log.contains("status=bounced"), "{mta}: something bounced");
    }
    // Onto the store it is on: skipped, nothing done (a batch run again is harmless).
    let again = mailfleet(&["--config", c, "move", "alice@example.com", "--to", "store2"]);
    assert_eq!(again.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("skipped: already on store2"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
}

//! The move the issue asks to see: an account with 2,000 messages in five folders (nested,
//! with spaces and non-ASCII names), flags and keywords set, moved while its user is logged
//! in through the proxy and 50 messages come through both MTAs during the copy and the lock.
//! Afterwards every message is on the new store exactly once with its body, UIDs,
//! UIDVALIDITY, flags, keywords, internal dates and POP3 UIDLs as they were; a login through
//! the proxy lands on the new store and the next mail goes there; nothing bounced; the old
//! copy takes no logins.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mailfleet_core::Address;
use mailfleet_mailclient::imap::Imap;
use mailfleet_stack::TestStack;
use mailfleet_stack::demo::DEMO_PASSWORD;

use crate::common::{clock, local, mailfleet, send_via, unique_tag};

/// The folders, in IMAP's modified UTF-7: "Projekte Ü" and "Projekte Ü.Entwürfe Ö".
const FOLDERS: [&str; 5] = [
    "INBOX",
    "Archive 2026",
    "Archive 2026.Q1",
    "Projekte &ANw-",
    "Projekte &ANw-.Entw&APw-rfe &ANY-",
];
const PER_FOLDER: usize = 400;
const DURING: usize = 50;

fn message(folder: usize, i: usize) -> (String, Vec<u8>) {
    let id = format!("<big-{folder}-{i}@mailfleet.test>");
    let body = format!(
        "From: <bob@example.com>\r\nTo: <alice@example.com>\r\nSubject: big {folder} {i}\r\nMessage-ID: {id}\r\n\r\n{}\r\n",
        format!("line {i} of folder {folder}\r\n").repeat(1 + i % 30)
    );
    (id, body.into_bytes())
}

/// The Message-ID of a raw message.
fn message_id(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    text.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("Message-ID: ").map(|v| v.trim().to_string()))
}

#[tokio::test(flavor = "multi_thread")]
async fn two_thousand_messages_move_while_the_user_works_and_mail_keeps_coming() {
    let stack = TestStack::start().await.expect("stack");
    let config = stack.config().unwrap();
    let path = stack.config_path();
    let c = path.to_str().unwrap();
    let ports = stack.info.ports.clone();
    let (imap1, imap2, proxy) = (ports.stores[0].imap, ports.stores[1].imap, ports.proxy.imap);

    // The mailbox: 2,000 messages with flags, keywords and internal dates of their own.
    let mut admin = Imap::login(&local(imap1), "alice@example.com", DEMO_PASSWORD, &clock())
        .await
        .unwrap();
    let mut expected: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (f, folder) in FOLDERS.iter().enumerate() {
        if *folder != "INBOX" {
            admin.create(folder).await.unwrap();
        }
        for i in 0..PER_FOLDER {
            let (id, raw) = message(f, i);
            let flags = match i % 6 {
                0 => Some("(\\Seen)"),
                1 => Some("(\\Seen \\Flagged $Work)"),
                2 => Some("(\\Answered $Later)"),
                _ => None,
            };
            let date = format!(
                "\"{:02}-{}-2025 {:02}:{:02}:07 +0000\"",
                1 + i % 28,
                ["Jan", "Feb", "Mar", "Apr"][f % 4],
                i % 24,
                i % 60
            );
            admin
                .append(folder, flags, Some(&date), &raw)
                .await
                .unwrap();
            expected.insert(id, raw);
        }
    }
    admin.logout().await;
    let reach = mailfleet_remote::Reach::new();
    let alice = Address::parse("alice@example.com").unwrap();
    let (store1, store2) = (
        config.fleet.server("store1").unwrap(),
        config.fleet.server("store2").unwrap(),
    );
    let before = mailfleet_move::folders(&reach, store1, &alice, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(
        before.values().map(|f| f.messages).sum::<u64>(),
        2000,
        "{:?}",
        before.keys().collect::<Vec<_>>()
    );

    // The user is logged in through the proxy; mail keeps coming through both MTAs.
    let mut user = Imap::login(&local(proxy), "alice@example.com", DEMO_PASSWORD, &clock())
        .await
        .unwrap();
    user.select("INBOX").await.unwrap();
    let tag = unique_tag("big");
    let (mx1, mx2) = (
        config.fleet.server("mx1").unwrap().clone(),
        config.fleet.server("mx2").unwrap().clone(),
    );
    let sender = {
        let tag = tag.clone();
        tokio::spawn(async move {
            for i in 0..DURING {
                let mx = if i % 2 == 0 { &mx1 } else { &mx2 };
                send_via(
                    &mx.host,
                    mx.ports.smtp.unwrap(),
                    "bob@example.com",
                    "alice@example.com",
                    &format!("{tag} during <{i}>"),
                )
                .await;
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
        })
    };
    let owned = c.to_string();
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        mailfleet(&[
            "--config",
            &owned,
            "--json",
            "move",
            "alice@example.com",
            "--to",
            "store2",
        ])
    })
    .await
    .unwrap();
    let took = started.elapsed();
    sender.await.unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let moved = &report["report"]["moves"][0]["moved"];
    assert_eq!(moved["to"], "store2", "{report:#}");
    eprintln!(
        "moved 2,000 messages in {took:?}: {} passes, locked {} ms",
        moved["passes"], moved["lock_ms"]
    );
    assert!(user.noop().await.is_err(), "the session survived the lock");

    // Everything from before is on store2 exactly as it was.
    let after = mailfleet_move::folders(&reach, store2, &alice, Duration::from_secs(120))
        .await
        .unwrap();
    for (name, f) in &before {
        let g = after
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing on store2"));
        assert_eq!(
            (&f.uidvalidity, &f.guid),
            (&g.uidvalidity, &g.guid),
            "{name}"
        );
        for (uid, m) in &f.mail {
            assert_eq!(g.mail.get(uid), Some(m), "{name} UID {uid}");
        }
        if name != "INBOX" {
            assert_eq!(f, g, "{name} changed");
        }
    }

    // The next mail, and every one sent during the move, arrive on store2 once.
    send_via(
        &config.fleet.server("mx1").unwrap().host,
        ports.smtp,
        "bob@example.com",
        "alice@example.com",
        &format!("{tag} next"),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got = crate::common::imap_find(imap2, "alice@example.com", &tag).await;
        if got.len() > DURING {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} messages sent during and after the move arrived",
            got.len(),
            DURING + 1
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every message on store2, read over IMAP: each original once with its body, each new
    // one once.
    let mut s = Imap::login(&local(imap2), "alice@example.com", DEMO_PASSWORD, &clock())
        .await
        .unwrap();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut subjects: BTreeMap<String, usize> = BTreeMap::new();
    for folder in FOLDERS {
        let m = s.select(folder).await.unwrap();
        if m.exists == 0 {
            continue;
        }
        for f in s.fetch("1:*", "BODY.PEEK[]").await.unwrap() {
            let raw = f.body().unwrap();
            match message_id(raw) {
                Some(id) if expected.contains_key(&id) => {
                    assert_eq!(raw, &expected[&id][..], "{id}: body changed");
                    *seen.entry(id).or_default() += 1;
                }
                _ => {
                    let text = String::from_utf8_lossy(raw);
                    let subject = text
                        .lines()
                        .find_map(|l| l.strip_prefix("Subject: "))
                        .unwrap_or("")
                        .to_string();
                    *subjects.entry(subject).or_default() += 1;
                }
            }
        }
    }
    s.logout().await;
    assert_eq!(seen.len(), 2000, "originals found");
    assert!(seen.values().all(|n| *n == 1), "an original is doubled");
    for i in (0..DURING)
        .map(|i| format!("{tag} during <{i}>"))
        .chain([format!("{tag} next")])
    {
        assert_eq!(subjects.get(&i), Some(&1), "{i}: {subjects:?}");
    }

    // A login through the proxy lands on store2: it sees the next mail.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(s) =
            Imap::login(&local(proxy), "alice@example.com", DEMO_PASSWORD, &clock()).await
        {
            s.logout().await;
            break;
        }
        assert!(Instant::now() < deadline, "no login through the proxy");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let through =
        crate::common::imap_find(proxy, "alice@example.com", &format!("{tag} next")).await;
    assert_eq!(through.len(), 1, "the proxy did not take alice to store2");

    // Nothing bounced; the old copy takes no logins.
    for mta in ["postfix.log", "postfix-mx2.log"] {
        let log = std::fs::read_to_string(stack.base().join("log").join(mta)).unwrap();
        assert!(!log.contains("status=bounced"), "{mta}: something bounced");
    }
    assert!(
        Imap::login(&local(imap1), "alice@example.com", DEMO_PASSWORD, &clock())
            .await
            .is_err(),
        "alice still logs in on store1"
    );
}

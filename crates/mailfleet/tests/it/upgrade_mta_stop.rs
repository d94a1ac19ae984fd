//! An MTA whose own packages the update upgrades is stopped before its update and started
//! after it, and only while its partner serves: `upgrade run --servers mx1,mx2` with both
//! MTAs' Postfix naming mf-tools among its packages stops mx1's Postfix while mx2 serves, then
//! mx2's while mx1 serves; a watch never finds both down, and mail sent all along (to the
//! other MTA when one refuses, as a sending MTA does with two MX hosts) arrives once each.
//! With mx2's Postfix stopped by hand, a run to 1.2 halts before mx1 and leaves it running
//! at 1.1; once mx2 is back, `upgrade resume` finishes.

use std::process::Command;
use std::time::{Duration, Instant};

use mailfleet_mailclient::Endpoint;
use mailfleet_mailclient::smtp::{Options, Smtp};

use crate::common::{mailfleet, mailfleet_json};

/// mf-tools' version on `server`.
fn version(config: &mailfleet_core::Config, server: &str) -> String {
    crate::upgrade_run::versions(config)
        .into_iter()
        .find(|(s, _)| s == server)
        .unwrap()
        .1
}

/// Sends one message through the first MTA of `mtas` that takes it; which one did.
async fn send_either(mtas: &[(String, u16)], to: &str, subject: &str) -> Option<usize> {
    let message = format!(
        "From: <bob@example.com>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\r\nTest message {subject}\r\n"
    );
    for (i, (host, port)) in mtas.iter().enumerate() {
        let Ok(mut s) = Smtp::connect(
            &Endpoint::plain(host, *port),
            Options::default(),
            &crate::common::clock(),
        )
        .await
        else {
            continue;
        };
        if s.send("bob@example.com", &[to], message.as_bytes())
            .await
            .is_ok()
        {
            s.quit().await;
            return Some(i);
        }
    }
    None
}

fn postfix(config: &mailfleet_core::Config, mta: &str, what: &str) {
    let dir = config
        .fleet
        .server(mta)
        .unwrap()
        .postfix_dir
        .clone()
        .unwrap();
    let out = Command::new("postfix")
        .arg("-c")
        .arg(&dir)
        .arg(what)
        .output()
        .unwrap();
    assert!(out.status.success(), "postfix {what} on {mta}: {out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_mta_is_stopped_for_its_update_only_while_its_partner_serves() {
    let stack = crate::common::backed_up_stack().await;
    let config = stack.config().unwrap();
    let repo = stack.base().join("apt-repo");
    let path = crate::upgrade_run::prepare(&stack, &config);
    // Both MTAs' Postfix take mf-tools for one of theirs (the demo names postfix, postfix-*).
    let text = std::fs::read_to_string(&path).unwrap();
    let demo = "packages = [\"postfix\", \"postfix-*\"]\n";
    assert_eq!(text.matches(demo).count(), 2, "{text}");
    std::fs::write(
        &path,
        text.replace(demo, "packages = [\"postfix\", \"mf-tools\"]\n")
            + "\n[monitor]\nnotify_email = [\"dave@example.org\"]\nnotify_from = \"mailfleet@example.com\"\n",
    )
    .unwrap();
    let c = path.to_str().unwrap();
    let pid = |mta: &str| {
        crate::upgrade_run::daemons(&config)
            .into_iter()
            .find(|(s, _)| s == mta)
            .unwrap()
            .1
    };
    let (mx1_before, mx2_before) = (pid("mx1"), pid("mx2"));
    let mtas: Vec<(String, u16)> = ["mx1", "mx2"]
        .iter()
        .map(|n| {
            let s = config.fleet.server(n).unwrap();
            (s.host.clone(), s.ports.smtp.unwrap())
        })
        .collect();

    let tag = crate::common::unique_tag("mtastop");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let (stop, tag, mtas) = (stop.clone(), tag.clone(), mtas.clone());
        tokio::spawn(async move {
            let (mut sent, mut refused, mut i) = (Vec::new(), 0, 0usize);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let to = ["alice@example.com", "erin@example.com"][i % 2];
                let subject = format!("{tag} {i}");
                // By turns the first choice, as DNS round robin over two MX hosts of one
                // preference.
                let order: Vec<(String, u16)> = if i % 4 < 2 {
                    mtas.clone()
                } else {
                    mtas.iter().rev().cloned().collect()
                };
                match send_either(&order, to, &subject).await {
                    Some(_) => sent.push((to, subject)),
                    None => refused += 1,
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            (sent, refused)
        })
    };
    let watch: Vec<Vec<(String, String, u16)>> = vec![
        ["mx1", "mx2"]
            .iter()
            .zip(&mtas)
            .map(|(n, (h, p))| (n.to_string(), h.clone(), *p))
            .collect(),
    ];
    let watcher = tokio::spawn(crate::upgrade_run::watch_groups(watch, stop.clone()));
    let run = mailfleet_json(
        c,
        &[
            "upgrade",
            "run",
            "--servers",
            "mx1,mx2",
            "--packages",
            "mf-tools",
        ],
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (sent, refused) = sender.await.unwrap();
    let (looks, down) = watcher.await.unwrap();
    assert_eq!(run["state"], "done", "{run:#}");
    let out = |n: usize| run["steps"][n]["output"].as_str().unwrap().to_string();
    assert_eq!(run["steps"][0]["server"], "mx1");
    assert!(
        out(0).contains(&format!(
            "stopped postfix (PID {mx1_before}) for the update of mf-tools, while mx2 serves"
        )),
        "{}",
        out(0)
    );
    assert!(
        out(1).contains(&format!(
            "stopped postfix (PID {mx2_before}) for the update of mf-tools, while mx1 serves"
        )),
        "{}",
        out(1)
    );
    for n in [0, 1] {
        assert!(
            out(n).contains("started postfix (stopped for the update"),
            "{}",
            out(n)
        );
        assert!(out(n).contains("gate after: every probe OK"), "{}", out(n));
        // Stopping is part of the drain: its time is recorded apart from the update's.
        assert!(run["steps"][n]["timings"]["drain"].as_f64().unwrap() > 0.0);
        assert!(run["steps"][n]["timings"]["update"].as_f64().unwrap() > 0.0);
    }
    assert_ne!(pid("mx1"), mx1_before);
    assert_ne!(pid("mx2"), mx2_before);
    assert_eq!(version(&config, "mx1"), "1.1");
    assert_eq!(version(&config, "mx2"), "1.1");
    // Each was seen down while stopped, never both at once.
    assert!(looks > 10, "the watch looked {looks} times");
    assert!(
        down.iter().all(|(_, names)| names.len() < 2),
        "both MTAs down at once: {down:?}"
    );
    for mta in ["mx1", "mx2"] {
        assert!(
            down.iter().any(|(_, names)| names == &[mta.to_string()]),
            "{mta} was never seen down: {down:?}"
        );
    }
    assert_eq!(refused, 0, "a mail found neither MTA taking it");
    assert!(sent.len() >= 6, "only {} mails sent", sent.len());
    for (user, port) in [
        ("alice@example.com", stack.info.ports.stores[0].imap),
        ("erin@example.com", stack.info.ports.stores[1].imap),
    ] {
        let want: Vec<&String> = sent
            .iter()
            .filter(|(to, _)| *to == user)
            .map(|(_, s)| s)
            .collect();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut got = crate::common::imap_find(port, user, &tag).await;
        while got.len() < want.len() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            got = crate::common::imap_find(port, user, &tag).await;
        }
        for subject in want {
            let n = got
                .iter()
                .filter(|m| String::from_utf8_lossy(m).contains(&format!("Subject: {subject}\r\n")))
                .count();
            assert_eq!(n, 1, "{user}: {subject} arrived {n} times");
        }
    }

    // The admin's summary at the end: each server, its times, what was stopped and started.
    let dave = stack.info.ports.stores[1].imap;
    let deadline = Instant::now() + Duration::from_secs(60);
    let summary = loop {
        let found = crate::common::imap_find(dave, "dave@example.org", "done: 2 servers").await;
        if let Some(m) = found.first() {
            break String::from_utf8_lossy(m).into_owned();
        }
        assert!(Instant::now() < deadline, "no summary mailed to the admin");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(summary.contains("1. mx1: done in "), "{summary}");
    assert!(summary.contains("(the update "), "{summary}");
    assert!(
        summary.contains(&format!("   stopped postfix (PID {mx2_before})")),
        "{summary}"
    );
    assert!(summary.contains("   started postfix"), "{summary}");

    // mx2 down: the run to 1.2 halts before mx1, which keeps running at 1.1.
    crate::upgrade_run::publish(&repo, "1.2");
    postfix(&config, "mx2", "stop");
    let mx1_now = pid("mx1");
    let halted = mailfleet(&[
        "--config",
        c,
        "--json",
        "upgrade",
        "run",
        "--servers",
        "mx1,mx2",
        "--packages",
        "mf-tools",
    ]);
    assert_eq!(halted.status.code(), Some(1), "{halted:?}");
    let halted: serde_json::Value = serde_json::from_slice(&halted.stdout).unwrap();
    assert_eq!(halted["state"], "halted", "{halted:#}");
    assert_eq!(halted["steps"][0]["phase"], "pending", "{halted:#}");
    let reason = halted["reason"].as_str().unwrap();
    assert!(
        reason.contains("gate before mx1") && reason.contains("mx2"),
        "{reason}"
    );
    assert_eq!(pid("mx1"), mx1_now, "mx1 was stopped while mx2 was down");
    assert_eq!(version(&config, "mx1"), "1.1");
    postfix(&config, "mx2", "start");
    let resumed = mailfleet_json(c, &["upgrade", "resume"]);
    assert_eq!(resumed["state"], "done", "{resumed:#}");
    assert_eq!(version(&config, "mx1"), "1.2");
    assert_eq!(version(&config, "mx2"), "1.2");
}

//! Two MTAs (the demo's mx1 and mx2, real Postfix on their own addresses), each with its own
//! `mailfleet policy serve` (`[policy] mta` naming it, reached over SSH), one shared Redis:
//! one quota holds mail on both, and each held message is released exactly once, by the
//! server of the MTA whose hold queue holds it, at the sender's rate, nothing bounced.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mailfleet_stack::TestStack;

use crate::policy::wait_for;

/// The quota: one message per window, so ten messages take nine windows to go out; the held
/// mail waits longer than the minute after which a record missing from a hold queue counts
/// as gone.
const WINDOW_SECS: u64 = 8;
const MESSAGES: usize = 10;

/// The stack's config with Redis as the shared state and a policy server for `mta`.
fn policy_config(stack: &TestStack, mta: &str, listen: u16) -> PathBuf {
    let text = std::fs::read_to_string(stack.config_path()).unwrap();
    let embedded = "[state]\nbackend = \"embedded\"\n";
    assert!(text.contains(embedded), "the demo config changed");
    let redis = format!(
        "[state]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:{}/0\"\n",
        stack.info.ports.redis
    );
    let path = stack.base().join(format!("policy-{mta}.toml"));
    std::fs::write(
        &path,
        format!(
            "{}\n[policy]\nmta = {mta:?}\nlisten = \"127.0.0.1:{listen}\"\n\
             window_secs = {WINDOW_SECS}\nrelease_interval_secs = 1\nblock_refresh_secs = 60\n\n\
             [[policy.quota]]\nfor = \"alice@example.com\"\nmessages = 1\n",
            text.replace(embedded, &redis)
        ),
    )
    .unwrap();
    path
}

fn held_ids(stack: &TestStack, mta: &str) -> HashSet<String> {
    crate::policy::queue_of(stack, mta, "queue_id")
        .into_iter()
        .filter(|(q, _)| q == "hold")
        .map(|(_, id)| id)
        .collect()
}

/// Subjects in bob's mailbox (store1) starting with `tag`, with how often each arrived.
fn delivered(stack: &TestStack, tag: &str) -> HashMap<String, usize> {
    let md = stack.base().join("store1/mail/example.com/bob/Maildir");
    let mut out = HashMap::new();
    for sub in ["new", "cur"] {
        for e in std::fs::read_dir(md.join(sub))
            .into_iter()
            .flatten()
            .flatten()
        {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            if let Some(subject) = text
                .lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .filter(|s| s.starts_with(tag))
            {
                *out.entry(subject.to_string()).or_insert(0) += 1;
            }
        }
    }
    out
}

/// Every "released held message ID" line of a policy server's log: (time, ID).
fn releases(log: &Path) -> Vec<(chrono::DateTime<chrono::Utc>, String)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let l = strip_ansi(l);
            let id = l.split("released held message ").nth(1)?;
            let id = id.split_whitespace().next()?.to_string();
            let at = l.split_whitespace().next()?.parse().ok()?;
            Some((at, id))
        })
        .collect()
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn two_mtas_sharing_redis_release_each_held_message_once_from_its_own_mta() {
    let stack = TestStack::start().await.expect("stack");
    let ports = mailfleet_stack::ports::free_ports("127.0.0.1", 2);
    let mut servers = Vec::new();
    let mut logs = Vec::new();
    for (mta, port) in ["mx1", "mx2"].into_iter().zip(&ports) {
        let config = policy_config(&stack, mta, *port);
        let log = stack.base().join(format!("policy-{mta}.log"));
        servers.push(crate::common::policy_serve(&config, *port, &log));
        crate::policy::hook_mta(&stack, mta, &config);
        logs.push(log);
    }

    // Alice sends ten messages, alternating between the MTAs: one passes, nine are held,
    // some on each MTA.
    let tag = crate::common::unique_tag("twomta");
    for i in 0..MESSAGES {
        let mta = ["mx1", "mx2"][i % 2];
        let subject = format!("{tag}-{i}");
        crate::policy::submit_via(
            &stack,
            mta,
            "alice@example.com",
            &["bob@example.com"],
            &subject,
        )
        .await
        .unwrap_or_else(|e| panic!("{mta} refused {subject}: {e}"));
    }
    let mut held_at: HashMap<String, &str> = HashMap::new();
    wait_for("nine held, on both MTAs", Duration::from_secs(30), || {
        held_at.clear();
        for mta in ["mx1", "mx2"] {
            for id in held_ids(&stack, mta) {
                held_at.insert(id, mta);
            }
        }
        held_at.len() == MESSAGES - 1
    });
    assert!(
        held_at.values().any(|m| *m == "mx1") && held_at.values().any(|m| *m == "mx2"),
        "{held_at:?}"
    );

    // Released one a window, all of them (the last after about 72 s; margin for a loaded
    // machine: 60 s), each once.
    let limit = Duration::from_secs(WINDOW_SECS * (MESSAGES as u64 - 1) + 60);
    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for("every message delivered", limit, || {
            delivered(&stack, &tag).len() == MESSAGES
                && held_ids(&stack, "mx1").is_empty()
                && held_ids(&stack, "mx2").is_empty()
        })
    }));
    if done.is_err() {
        panic!(
            "not all released: delivered {:?}; still held on mx1 {:?}, on mx2 {:?}; mx1's server released {:?}, mx2's {:?}",
            delivered(&stack, &tag),
            held_ids(&stack, "mx1"),
            held_ids(&stack, "mx2"),
            releases(&logs[0]),
            releases(&logs[1]),
        );
    }
    let copies = delivered(&stack, &tag);
    assert!(copies.values().all(|n| *n == 1), "duplicates: {copies:?}");

    // Each server released exactly its own MTA's held messages, each once.
    let mut all = Vec::new();
    for (mta, log) in ["mx1", "mx2"].into_iter().zip(&logs) {
        let mine = releases(log);
        for (_, id) in &mine {
            assert_eq!(
                held_at.get(id).copied(),
                Some(mta),
                "{mta}'s policy server released {id}, held at {:?}",
                held_at.get(id)
            );
        }
        all.extend(mine);
    }
    let ids: HashSet<&String> = all.iter().map(|(_, id)| id).collect();
    assert_eq!(
        (all.len(), ids.len()),
        (MESSAGES - 1, MESSAGES - 1),
        "{all:?}"
    );

    // At the sender's rate: one a window between the two servers (1 s margin for the
    // release loop's interval and log timestamps).
    all.sort();
    for pair in all.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(
            gap >= chrono::Duration::seconds(WINDOW_SECS as i64 - 1),
            "released {} and {} only {gap} apart",
            pair[0].1,
            pair[1].1
        );
    }
    // Nothing bounced: no bounce in alice's mailbox, none in the MTAs' logs.
    for mta in ["mx1", "mx2"] {
        let log = std::fs::read_to_string(stack.base().join(match mta {
            "mx1" => "log/postfix.log".to_string(),
            m => format!("log/postfix-{m}.log"),
        }))
        .unwrap();
        assert!(!log.contains("status=bounced"), "{mta} bounced:\n{log}");
    }
    drop(servers);
}

//! Quotas and blocks through the real Postfix of the stack: `mailfleet policy serve` runs as
//! Postfix's policy service (SMTP AUTH on submission) and as its milter (the sendmail binary);
//! mail over quota lands in the hold queue, none bounces, and it is delivered once the window
//! has passed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mailfleet_mailclient::smtp::{Options, Smtp};
use mailfleet_mailclient::{Endpoint, Tls};
use mailfleet_stack::TestStack;
use mailfleet_stack::demo::DEMO_PASSWORD;
use serde_json::Value;

/// The quota window of the test: short, so the release can be seen.
const WINDOW_SECS: u64 = 12;

use crate::common::ChildGuard as Server;

fn policy_config(stack: &TestStack, policy: u16, milter: u16) -> PathBuf {
    let conf = stack.base().join("mx1/conf");
    let text = std::fs::read_to_string(stack.config_path()).unwrap();
    let path = stack.base().join("policy.toml");
    std::fs::write(
        &path,
        format!(
            "{text}\n[monitor]\nnotify_email = [\"dave@example.org\"]\n\n[policy]\nlisten = \"127.0.0.1:{policy}\"\nmilter_listen = \"127.0.0.1:{milter}\"\n\
             window_secs = {WINDOW_SECS}\nrelease_interval_secs = 1\nblock_refresh_secs = 1\n\
             postfix_config_dir = {conf:?}\n\n\
             [[policy.quota]]\nfor = \"*\"\nmessages = 100\n\n\
             [[policy.quota]]\nfor = \"alice@example.com\"\nmessages = 5\n\n\
             [[policy.quota]]\nfor = \"carol@example.org\"\nmessages = 5\n\n\
             [[policy.quota]]\nfor = \"dave@example.org\"\nmessages = 2\n"
        ),
    )
    .unwrap();
    path
}

pub(crate) fn start_server(config: &Path, port: u16) -> Server {
    crate::common::policy_serve(config, port, &config.with_extension("log"))
}

pub(crate) fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Puts mailfleet in mx1's Postfix path with the lines `policy postfix-config` prints.
pub(crate) fn hook_postfix(stack: &TestStack, config: &Path) {
    hook_mta(stack, "mx1", config);
}

/// Puts mailfleet in an MTA's Postfix path with the lines `policy postfix-config` prints.
pub(crate) fn hook_mta(stack: &TestStack, mta: &str, config: &Path) {
    let lines = crate::common::mailfleet_ok(config, &["policy", "postfix-config"]);
    assert!(lines.contains("smtpd_end_of_data_restrictions"), "{lines}");
    let conf = stack.base().join(mta).join("conf");
    let mut main_cf = std::fs::read_to_string(conf.join("main.cf")).unwrap();
    main_cf.push_str(&lines);
    std::fs::write(conf.join("main.cf"), main_cf).unwrap();
    let out = Command::new("postfix")
        .arg("-c")
        .arg(&conf)
        .arg("reload")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// mx1's queue: (queue name, sender) per message.
pub(crate) fn queue(stack: &TestStack) -> Vec<(String, String)> {
    queue_of(stack, "mx1", "sender")
}

/// An MTA's queue: (queue name, the `postqueue -j` field `field`) per message.
pub(crate) fn queue_of(stack: &TestStack, mta: &str, field: &str) -> Vec<(String, String)> {
    let out = Command::new("postqueue")
        .arg("-c")
        .arg(stack.base().join(mta).join("conf"))
        .arg("-j")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| {
            (
                v["queue_name"].as_str().unwrap_or("").to_string(),
                v[field].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

pub(crate) fn held_of(stack: &TestStack, sender: &str) -> usize {
    queue(stack)
        .iter()
        .filter(|(q, s)| q == "hold" && s == sender)
        .count()
}

/// The messages of a mailbox (`DOMAIN/LOCAL`) on either store.
fn mailbox_texts(stack: &TestStack, who: &str) -> Vec<String> {
    let mut out = Vec::new();
    for store in ["store1", "store2"] {
        let md = stack
            .base()
            .join(store)
            .join("mail")
            .join(who)
            .join("Maildir");
        for sub in ["new", "cur"] {
            for e in std::fs::read_dir(md.join(sub))
                .into_iter()
                .flatten()
                .flatten()
            {
                out.push(std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
    }
    out
}

/// Messages in bob's INBOX whose subject starts with `tag`.
pub(crate) fn delivered(stack: &TestStack, tag: &str) -> usize {
    let subject = format!("Subject: {tag}");
    mailbox_texts(stack, "example.com/bob")
        .iter()
        .filter(|t| t.contains(&subject))
        .count()
}

pub(crate) async fn submit(
    stack: &TestStack,
    user: &str,
    to: &[&str],
    subject: &str,
) -> Result<(), String> {
    submit_via(stack, "mx1", user, to, subject).await
}

/// Submits a message as `user` through an MTA's submission port (STARTTLS, SMTP AUTH).
pub(crate) async fn submit_via(
    stack: &TestStack,
    mta: &str,
    user: &str,
    to: &[&str],
    subject: &str,
) -> Result<(), String> {
    let config = stack.config().unwrap();
    let mx = config.fleet.server(mta).unwrap();
    let tls = Tls::new(&mx.tls, &mx.host).unwrap();
    let at = Endpoint {
        host: &mx.host,
        port: mx.ports.submission.unwrap(),
        tls: Some(&tls),
        implicit: false,
    };
    let message = format!(
        "From: <{user}>\r\nTo: <{}>\r\nSubject: {subject}\r\n\r\nquota test\r\n",
        to[0]
    );
    let clock = crate::common::clock();
    let sent = async {
        let mut s = Smtp::connect(&at, Options::default(), &clock).await?;
        s.auth_plain(user, DEMO_PASSWORD).await?;
        s.send(user, to, message.as_bytes()).await?;
        s.quit().await;
        Ok::<(), mailfleet_mailclient::MailError>(())
    };
    sent.await.map_err(|e| e.to_string())
}

/// Repeats `attempt` until its result satisfies `done` (the block takes up to the refresh
/// interval to reach the server), returning that result.
async fn until<F, Fut, T>(limit: Duration, mut attempt: F, done: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = Instant::now() + limit;
    loop {
        let r = attempt().await;
        if done(&r) || Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn sendmail(stack: &TestStack, from: &str, to: &str, subject: &str) {
    use std::io::Write as _;
    let mut child = Command::new("sendmail")
        .arg("-C")
        .arg(stack.base().join("mx1/conf"))
        .args(["-f", from, to])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            format!("From: <{from}>\nTo: <{to}>\nSubject: {subject}\n\nlocal submission\n")
                .as_bytes(),
        )
        .unwrap();
    assert!(child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn quotas_hold_and_release_blocks_refuse_through_real_postfix() {
    let stack = TestStack::start().await.expect("stack");
    let ports = mailfleet_stack::ports::free_ports("127.0.0.1", 2);
    let config = policy_config(&stack, ports[0], ports[1]);
    let _server = start_server(&config, ports[0]);
    hook_postfix(&stack, &config);

    // 8 by SMTP AUTH as alice, 8 through sendmail as carol; erin is unaffected.
    for i in 0..8 {
        submit(
            &stack,
            "alice@example.com",
            &["bob@example.com"],
            &format!("alice-{i}"),
        )
        .await
        .unwrap_or_else(|e| panic!("alice message {i} refused: {e}"));
        sendmail(
            &stack,
            "carol@example.org",
            "bob@example.com",
            &format!("carol-{i}"),
        );
    }
    for i in 0..3 {
        submit(
            &stack,
            "erin@example.com",
            &["bob@example.com"],
            &format!("erin-{i}"),
        )
        .await
        .unwrap();
    }
    wait_for(
        "5 + 5 + 3 deliveries and 3 + 3 held",
        Duration::from_secs(30),
        || {
            delivered(&stack, "alice-") == 5
                && delivered(&stack, "carol-") == 5
                && delivered(&stack, "erin-") == 3
                && held_of(&stack, "alice@example.com") == 3
                && held_of(&stack, "carol@example.org") == 3
        },
    );
    let held: Value = serde_json::from_str(&crate::common::mailfleet_ok(
        &config,
        &["--json", "policy", "held"],
    ))
    .unwrap();
    // The same six (unless the window already ran out and the release began).
    let held = held.as_array().unwrap();
    assert!(
        !held.is_empty()
            && held.len() <= 6
            && held
                .iter()
                .all(|h| h["key"] == "alice@example.com" || h["key"] == "carol@example.org"),
        "{held:#?}"
    );

    // A message to 10 recipients counts once: dave (2 per window) sends two such, then a third.
    let ten = ["bob@example.com"; 10];
    submit(&stack, "dave@example.org", &ten, "dave-0")
        .await
        .unwrap();
    submit(&stack, "dave@example.org", &ten, "dave-1")
        .await
        .unwrap();
    submit(&stack, "dave@example.org", &["bob@example.com"], "dave-2")
        .await
        .unwrap();
    wait_for("dave's third message held", Duration::from_secs(30), || {
        held_of(&stack, "dave@example.org") == 1
    });
    // The admin lets it go now, before the window ends (the record is written behind).
    wait_for("dave's held record", Duration::from_secs(10), || {
        let held: Value = serde_json::from_str(&crate::common::mailfleet_ok(
            &config,
            &["--json", "policy", "held", "dave@example.org"],
        ))
        .unwrap();
        held.as_array().is_some_and(|a| a.len() == 1)
    });
    crate::common::mailfleet_ok(&config, &["policy", "release", "dave@example.org"]);
    wait_for(
        "dave's released message delivered",
        Duration::from_secs(20),
        || held_of(&stack, "dave@example.org") == 0 && delivered(&stack, "dave-") == 3,
    );

    // After the window the held mail goes out, oldest first, and nothing bounced.
    let released = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(
            "the held mail to be released and delivered",
            Duration::from_secs(40),
            || {
                delivered(&stack, "alice-") == 8
                    && delivered(&stack, "carol-") == 8
                    && queue(&stack).iter().all(|(q, _)| q != "hold")
            },
        )
    }));
    if released.is_err() {
        panic!(
            "held mail not released: queue {:?}, delivered alice {} carol {}\n--- policy server log ---\n{}",
            queue(&stack),
            delivered(&stack, "alice-"),
            delivered(&stack, "carol-"),
            std::fs::read_to_string(config.with_extension("log")).unwrap_or_default()
        );
    }
    let log = std::fs::read_to_string(stack.base().join("log/postfix.log")).unwrap();
    assert!(!log.contains("status=bounced"), "something bounced");
    // One alert mail per account and window, however often it went over.
    for who in ["alice@example.com", "carol@example.org"] {
        let subject = format!("PROBLEM policy quota {who}");
        wait_for(
            &format!("the alert about {who}"),
            Duration::from_secs(20),
            || {
                mailbox_texts(&stack, "example.org/dave")
                    .iter()
                    .filter(|t| t.contains(&subject))
                    .count()
                    == 1
            },
        );
    }

    // A blocked account is refused, by SMTP and through sendmail; unblocked, it passes.
    for who in ["erin@example.com", "carol@example.org"] {
        crate::common::mailfleet_ok(
            &config,
            &["policy", "block", who, "--reason", "compromised"],
        );
    }
    let refused = until(
        Duration::from_secs(10),
        || {
            submit(
                &stack,
                "erin@example.com",
                &["bob@example.com"],
                "erin-blocked",
            )
        },
        Result::is_err,
    )
    .await
    .unwrap_err();
    assert!(refused.contains("blocked"), "{refused}");
    // The server has the blocks now: a local submission as carol is refused by the milter.
    sendmail(
        &stack,
        "carol@example.org",
        "bob@example.com",
        "carol-blocked",
    );
    wait_for(
        "the milter to refuse carol",
        Duration::from_secs(20),
        || {
            std::fs::read_to_string(stack.base().join("log/postfix.log"))
                .unwrap_or_default()
                .lines()
                .any(|l| l.contains("milter-reject") && l.contains("from=<carol@example.org>"))
        },
    );
    assert_eq!(delivered(&stack, "carol-blocked"), 0);
    crate::common::mailfleet_ok(&config, &["policy", "unblock", "erin@example.com"]);
    until(
        Duration::from_secs(10),
        || {
            submit(
                &stack,
                "erin@example.com",
                &["bob@example.com"],
                "erin-again",
            )
        },
        Result::is_ok,
    )
    .await
    .unwrap();
    let status: Value = serde_json::from_str(&crate::common::mailfleet_ok(
        &config,
        &["--json", "policy", "status"],
    ))
    .unwrap();
    assert!(
        status["senders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["account"] == "alice@example.com"),
        "{status:#}"
    );
}

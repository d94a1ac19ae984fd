//! Regression tests for the policy defects found by trying it as a new admin would (issue
//! "Defects found by trying every capability"); each is named after the defect it pins.

use std::path::PathBuf;
use std::time::Duration;

use mailfleet_mailclient::smtp::{Options, Smtp};
use mailfleet_mailclient::{Endpoint, Tls};
use mailfleet_policy::client::PolicyClient;
use mailfleet_stack::TestStack;
use mailfleet_stack::demo::DEMO_PASSWORD;
use serde_json::Value;

use crate::policy::{delivered, held_of, hook_postfix, start_server, submit, wait_for};

/// The stack's config with the shared Redis state, a long window (nothing is released by
/// itself) and alice limited to five messages.
fn redis_config(stack: &TestStack, policy: u16) -> PathBuf {
    let conf = stack.base().join("mx1/conf");
    let text = std::fs::read_to_string(stack.config_path()).unwrap();
    let embedded = "[state]\nbackend = \"embedded\"\n";
    assert!(text.contains(embedded), "the stack's config changed shape");
    let text = text.replace(
        embedded,
        &format!(
            "[state]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:{}/0\"\n",
            stack.info.ports.redis
        ),
    );
    let path = stack.base().join("policy-redis.toml");
    std::fs::write(
        &path,
        format!(
            "{text}\n[policy]\nlisten = \"127.0.0.1:{policy}\"\nwindow_secs = 3600\n\
             release_interval_secs = 3600\nblock_refresh_secs = 1\n\
             postfix_config_dir = {conf:?}\n\n\
             [[policy.quota]]\nfor = \"alice@example.com\"\nmessages = 5\n"
        ),
    )
    .unwrap();
    path
}

fn json(config: &std::path::Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&crate::common::mailfleet_ok(config, &all)).unwrap()
}

async fn send_burst(stack: &TestStack, tag: &str, n: usize) {
    for i in 0..n {
        submit(
            stack,
            "alice@example.com",
            &["bob@example.com"],
            &format!("{tag}-{i}"),
        )
        .await
        .unwrap_or_else(|e| panic!("{tag} message {i} refused: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_commands_ignore_the_redis_state_store() {
    let stack = TestStack::start().await.expect("stack");
    let port = mailfleet_stack::ports::free_ports("127.0.0.1", 1)[0];
    let config = redis_config(&stack, port);
    let _server = start_server(&config, port);
    hook_postfix(&stack, &config);
    let data_dir = stack.config().unwrap().data_dir;
    let sqlite = data_dir.join("policy.db");

    // Eight at once against a quota of five: three held, recorded in Redis.
    send_burst(&stack, "burst", 8).await;
    wait_for("5 delivered and 3 held", Duration::from_secs(30), || {
        delivered(&stack, "burst-") == 5 && held_of(&stack, "alice@example.com") == 3
    });
    let status = json(&config, &["policy", "status"]);
    assert_eq!(status["held"], 3, "status reads Redis: {status:#}");
    assert!(
        status["senders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["account"] == "alice@example.com" && s["usage"]["messages"] == 5),
        "{status:#}"
    );
    let held = json(&config, &["policy", "held", "alice@example.com"]);
    assert_eq!(held.as_array().map(Vec::len), Some(3), "{held:#}");

    // release lets the three go now.
    crate::common::mailfleet_ok(&config, &["policy", "release", "alice@example.com"]);
    wait_for(
        "the released mail delivered",
        Duration::from_secs(30),
        || held_of(&stack, "alice@example.com") == 0 && delivered(&stack, "burst-") == 8,
    );

    // Over quota still: three more are held, and purge deletes them.
    send_burst(&stack, "again", 3).await;
    wait_for("3 more held", Duration::from_secs(30), || {
        held_of(&stack, "alice@example.com") == 3
    });
    wait_for("their records in Redis", Duration::from_secs(10), || {
        json(&config, &["policy", "held"]).as_array().map(Vec::len) == Some(3)
    });
    crate::common::mailfleet_ok(&config, &["policy", "purge", "alice@example.com"]);
    wait_for("the purged mail gone", Duration::from_secs(10), || {
        held_of(&stack, "alice@example.com") == 0
    });
    assert_eq!(delivered(&stack, "again-"), 0, "purged mail was delivered");

    // reset: the next message passes at once.
    crate::common::mailfleet_ok(&config, &["policy", "reset", "alice@example.com"]);
    send_burst(&stack, "after-reset", 1).await;
    wait_for(
        "the message after reset delivered",
        Duration::from_secs(30),
        || delivered(&stack, "after-reset-") == 1,
    );
    assert_eq!(held_of(&stack, "alice@example.com"), 0);
    assert!(
        !sqlite.exists(),
        "{} was created although the state is in Redis",
        sqlite.display()
    );
}

/// An SMTP session to mx1: on submission with STARTTLS and AUTH as `user`, or on the smtp
/// port from loopback (mynetworks) without AUTH.
async fn mx1_session(stack: &TestStack, auth: Option<&str>) -> Smtp {
    let config = stack.config().unwrap();
    let mx = config.fleet.server("mx1").unwrap();
    let tls = Tls::new(&mx.tls, &mx.host).unwrap();
    let port = match auth {
        Some(_) => mx.ports.submission.unwrap(),
        None => mx.ports.smtp.unwrap(),
    };
    let at = Endpoint {
        host: &mx.host,
        port,
        tls: Some(&tls),
        implicit: false,
    };
    let mut s = Smtp::connect(&at, Options::default(), &crate::common::clock())
        .await
        .unwrap();
    if let Some(user) = auth {
        s.auth_plain(user, DEMO_PASSWORD).await.unwrap();
    }
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn a_send_block_is_refused_only_after_the_message_was_sent() {
    let stack = TestStack::start().await.expect("stack");
    let ports = mailfleet_stack::ports::free_ports("127.0.0.1", 1);
    let conf = stack.base().join("mx1/conf");
    let text = std::fs::read_to_string(stack.config_path()).unwrap();
    let config = stack.base().join("policy-block.toml");
    std::fs::write(
        &config,
        format!(
            "{text}\n[policy]\nlisten = \"127.0.0.1:{}\"\nblock_refresh_secs = 1\n\
             postfix_config_dir = {conf:?}\n",
            ports[0]
        ),
    )
    .unwrap();
    let _server = start_server(&config, ports[0]);
    hook_postfix(&stack, &config);
    crate::common::mailfleet_ok(
        &config,
        &[
            "policy",
            "block",
            "alice@example.com",
            "--reason",
            "compromised: spam run",
        ],
    );
    // The block reaches the server within its refresh: an authenticated, then a local sender.
    for auth in [Some("alice@example.com"), None] {
        let mut refused = None;
        for _ in 0..50 {
            let mut s = mx1_session(&stack, auth).await;
            s.mail_from("alice@example.com").await.unwrap();
            match s.rcpt_to("bob@example.com").await {
                Err(e) => {
                    refused = Some(e);
                    break;
                }
                Ok(()) => {
                    s.reset().await.unwrap();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        let e = refused.unwrap_or_else(|| {
            panic!("RCPT accepted for a blocked sender ({auth:?}): refused only after DATA")
        });
        assert!(e.is_permanent(), "{e}");
        assert!(
            e.server_text()
                .is_some_and(|t| t.contains("sending is blocked")),
            "{e}"
        );
    }
    // Others still send through the same hook.
    let mut s = mx1_session(&stack, Some("bob@example.com")).await;
    s.send(
        "bob@example.com",
        &["carol@example.org"],
        b"Subject: not blocked\r\n\r\nhello\r\n",
    )
    .await
    .unwrap();
}

/// A Redis of its own for one test, stopped (by its PID) when the test ends.
struct OwnRedis(mailfleet_stack::Layout);

impl Drop for OwnRedis {
    fn drop(&mut self) {
        if let Some(pid) = mailfleet_stack::process::read_pid(&self.0.redis_pid()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGCONT,
            );
        }
        let _ = mailfleet_stack::redis::stop(&self.0);
    }
}

fn own_redis(dir: &std::path::Path, port: u16, extra: &[&str]) -> OwnRedis {
    let layout = mailfleet_stack::Layout::new(dir);
    std::fs::create_dir_all(layout.log_dir()).unwrap();
    mailfleet_stack::redis::start_with(&layout, "127.0.0.1", port, extra).unwrap();
    OwnRedis(layout)
}

fn redis_policy_config(dir: &std::path::Path, redis: u16, policy: u16) -> PathBuf {
    let config = dir.join("mailfleet.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"data\"\n[state]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:{redis}/0\"\n\
             [policy]\nlisten = \"127.0.0.1:{policy}\"\nblock_refresh_secs = 3600\nrelease_interval_secs = 3600\n\
             [[policy.quota]]\nfor = \"*\"\nmessages = 1000\n"
        ),
    )
    .unwrap();
    config
}

/// A Redis of its own (started with `extra` arguments), `policy serve` on it, and a client.
struct RedisPolicy {
    client: PolicyClient,
    _server: crate::common::ChildGuard,
    redis: OwnRedis,
    config: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

async fn redis_policy(extra: &[&str]) -> RedisPolicy {
    let dir = tempfile::tempdir().unwrap();
    let ports = mailfleet_stack::ports::free_ports("127.0.0.1", 2);
    let redis = own_redis(dir.path(), ports[0], extra);
    let config = redis_policy_config(dir.path(), ports[0], ports[1]);
    let log = dir.path().join("serve.log");
    let server = crate::common::policy_serve(&config, ports[1], &log);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], ports[1]));
    let client = PolicyClient::connect(addr, Duration::from_secs(10))
        .await
        .unwrap();
    RedisPolicy {
        client,
        _server: server,
        redis,
        config,
        log,
        _dir: dir,
    }
}

async fn end_of_message(c: &mut PolicyClient, sender: &str, n: usize) -> String {
    let qid = format!("Q{n}");
    c.ask(&[
        ("request", "smtpd_access_policy"),
        ("protocol_state", "END-OF-MESSAGE"),
        ("sasl_username", sender),
        ("recipient_count", "1"),
        ("size", "100"),
        ("queue_id", &qid),
    ])
    .await
    .expect("an answer")
    .verb()
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_redis_costs_every_request_the_full_timeout() {
    // Bound whole: the server and the directory live as long as the test.
    let mut p = redis_policy(&[]).await;
    let (c, redis, log) = (&mut p.client, &p.redis, &p.log);
    assert_eq!(end_of_message(c, "a@example.com", 0).await, "DUNNO");

    // Redis hangs (not down: stopped, its connections open).
    let pid = mailfleet_stack::process::read_pid(&redis.0.redis_pid()).unwrap();
    let pid = nix::unistd::Pid::from_raw(pid);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let started = std::time::Instant::now();
    for n in 1..=40 {
        assert_eq!(
            end_of_message(c, "a@example.com", n).await,
            "DUNNO",
            "fail-open"
        );
    }
    let took = started.elapsed();
    // The product's promise: after 3 commands that time out (500 ms each, one retry each),
    // answers come at once. Margin: 2 s for a loaded machine.
    let limit = Duration::from_millis(3 * 2 * 500 + 2000);
    assert!(
        took < limit,
        "40 requests took {took:?} while Redis hung (limit {limit:?})"
    );

    // Redis answers again: counting resumes and a recovery is sent, after one alarm.
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("RECOVERY policy state") {
            assert_eq!(
                text.matches("PROBLEM policy state").count(),
                1,
                "one alarm for the outage:\n{text}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no recovery notification:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_status_uses_keys_which_blocks_a_big_keyspace() {
    // As providers run Redis: KEYS, which blocks the server on a big keyspace, renamed away.
    let mut p = redis_policy(&["--rename-command", "KEYS", ""]).await;
    let (c, config) = (&mut p.client, &p.config);
    for (n, who) in ["a@example.com", "b@example.com", "a@example.com"]
        .iter()
        .enumerate()
    {
        assert_eq!(end_of_message(c, who, n).await, "DUNNO");
    }
    let status = json(config, &["policy", "status"]);
    let senders = status["senders"].as_array().unwrap();
    assert_eq!(senders.len(), 2, "{status:#}");
    assert_eq!(senders[0]["account"], "a@example.com");
    assert_eq!(senders[0]["usage"]["messages"], 2);
}

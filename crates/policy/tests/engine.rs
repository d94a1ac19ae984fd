//! The policy engine's decisions and the quota windows, on the real embedded state (SQLite)
//! and, for a failing store, a Redis URL nothing answers on.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mailfleet_core::SendBlock;
use mailfleet_policy::counters::{Counters, Limits, Usage, now_ms};
use mailfleet_policy::embedded::Embedded;
use mailfleet_policy::engine::{Alert, Engine, Message, Verdict};
use tokio::sync::mpsc::UnboundedReceiver;

struct Setup {
    engine: Engine,
    alerts: UnboundedReceiver<Alert>,
    _dir: tempfile::TempDir,
}

fn setup(policy: &str, counters: Option<Arc<dyn Counters>>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("data_dir = \"data\"\n[policy]\n{policy}\n");
    let config = mailfleet_core::Config::parse(&text, &dir.path().join("mailfleet.toml")).unwrap();
    let counters =
        counters.unwrap_or_else(|| Arc::new(Embedded::open(&config.policy.state_file).unwrap()));
    let (tx, alerts) = tokio::sync::mpsc::unbounded_channel();
    Setup {
        engine: Engine::new(config.policy.clone(), counters, tx),
        alerts,
        _dir: dir,
    }
}

const RULES: &str = "window_secs = 3600\n\
    [[policy.quota]]\nfor = \"*\"\nmessages = 3\n\
    [[policy.quota]]\nfor = \"@example.org\"\nmessages = 1\naction = \"defer_if_permit\"\n\
    [[policy.quota]]\nfor = \"boss@example.org\"\nexempt = true\n\
    [[policy.quota]]\nfor = \"strict@example.com\"\nmessages = 1\naction = \"reject\"\n\
    [[policy.quota]]\nfor = \"wide@example.com\"\nrecipients = 10\n\
    [[policy.quota]]\nfor = \"big@example.com\"\nbytes = 1000\n";

fn msg<'a>(sasl: &'a str, recipients: u64, bytes: u64, qid: &'a str) -> Message<'a> {
    Message {
        sasl_user: Some(sasl),
        sender: Some(sasl),
        recipients,
        bytes,
        queue_id: Some(qid),
        client: Some("192.0.2.1"),
    }
}

async fn send(e: &Engine, who: &str, n: usize) -> Vec<Verdict> {
    let mut out = Vec::new();
    for i in 0..n {
        let qid = format!("Q{who}{i}");
        out.push(e.end_of_message(&msg(who, 1, 100, &qid)).await.unwrap());
    }
    out
}

#[tokio::test]
async fn the_account_is_the_sasl_user_else_the_sender_lower_cased() {
    let s = setup(RULES, None);
    let e = &s.engine;
    assert_eq!(
        e.key(Some("Alice@Example.COM"), Some("x@y")).as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(
        e.key(None, Some("<Bob@Example.com>")).as_deref(),
        Some("bob@example.com")
    );
    assert_eq!(
        e.key(None, Some("<>")),
        None,
        "the null sender counts against nobody"
    );
    assert_eq!(e.key(None, None), None);
    let by_sender = setup("key = \"sender\"\n", None);
    assert_eq!(
        by_sender
            .engine
            .key(Some("auth@example.com"), Some("from@example.com"))
            .as_deref(),
        Some("from@example.com")
    );
}

#[tokio::test]
async fn over_quota_mail_is_held_deferred_or_rejected_by_the_most_specific_rule() {
    let s = setup(RULES, None);
    let e = &s.engine;
    // `*`: three, then held (and recorded for release).
    let v = send(e, "anyone@example.com", 5).await;
    assert_eq!(v[..3], [Verdict::Pass, Verdict::Pass, Verdict::Pass]);
    assert!(
        matches!(&v[3], Verdict::Hold(t) if t.contains("over its messages quota")),
        "{v:?}"
    );
    let held = e.counters().held(Some("anyone@example.com")).await.unwrap();
    assert_eq!(
        held.iter().map(|h| h.queue_id.as_str()).collect::<Vec<_>>(),
        ["Qanyone@example.com3", "Qanyone@example.com4"]
    );
    // `@example.org`: one, then 4xx.
    let v = send(e, "carol@example.org", 2).await;
    assert!(
        matches!(&v[1], Verdict::Defer(t) if t.starts_with("4.7.1")),
        "{v:?}"
    );
    // The account's own rule beats the domain's: exempt.
    assert!(
        send(e, "boss@example.org", 20)
            .await
            .iter()
            .all(|v| *v == Verdict::Pass)
    );
    // reject.
    let v = send(e, "strict@example.com", 2).await;
    assert!(
        matches!(&v[1], Verdict::Reject(t) if t.starts_with("5.7.1")),
        "{v:?}"
    );
    // Recipients and bytes limits.
    let wide = e
        .end_of_message(&msg("wide@example.com", 10, 1, "W1"))
        .await
        .unwrap();
    let wider = e
        .end_of_message(&msg("wide@example.com", 1, 1, "W2"))
        .await
        .unwrap();
    assert_eq!(wide, Verdict::Pass);
    assert!(
        matches!(&wider, Verdict::Hold(t) if t.contains("recipients")),
        "{wider:?}"
    );
    let big = e
        .end_of_message(&msg("big@example.com", 1, 1001, "B1"))
        .await
        .unwrap();
    assert!(
        matches!(&big, Verdict::Hold(t) if t.contains("bytes")),
        "{big:?}"
    );
}

#[tokio::test]
async fn one_alert_per_account_and_window_however_often_it_goes_over() {
    let mut s = setup(RULES, None);
    send(&s.engine, "anyone@example.com", 10).await;
    send(&s.engine, "other@example.com", 5).await;
    let mut alerted = Vec::new();
    while let Ok(a) = s.alerts.try_recv() {
        if let Alert::Quota(b) = a {
            alerted.push(b.key);
        }
    }
    assert_eq!(alerted, ["anyone@example.com", "other@example.com"]);
}

#[tokio::test]
async fn a_blocked_sender_is_refused_or_held_before_any_counting() {
    let s = setup(RULES, None);
    let mut blocks = HashMap::new();
    blocks.insert(
        "mallory@example.com".to_string(),
        SendBlock::now("compromised: spam run"),
    );
    s.engine.set_blocks(blocks.clone());
    let v = s
        .engine
        .end_of_message(&msg("Mallory@example.com", 1, 1, "M1"))
        .await
        .unwrap();
    assert!(
        matches!(&v, Verdict::Reject(t) if t.contains("compromised: spam run")),
        "{v:?}"
    );
    assert_eq!(
        s.engine
            .counters()
            .usage("mallory@example.com", now_ms(), 3_600_000)
            .await
            .unwrap(),
        Usage::default(),
        "nothing counted"
    );
    let hold = setup(&format!("blocked = \"hold\"\n{RULES}"), None);
    hold.engine.set_blocks(blocks);
    assert!(matches!(
        hold.engine.blocked("mallory@example.com"),
        Some(Verdict::Hold(_))
    ));
    assert_eq!(hold.engine.blocked("alice@example.com"), None);
}

#[tokio::test]
async fn a_state_store_that_fails_lets_mail_through_or_defers_it_by_config() {
    // Nothing listens on port 1: every Redis command fails at once.
    let redis = || -> Arc<dyn Counters> {
        Arc::new(
            mailfleet_policy::redis_store::RedisCounters::open(
                "redis://127.0.0.1:1/0",
                Duration::from_millis(200),
            )
            .unwrap(),
        )
    };
    let mut open = setup(RULES, Some(redis()));
    let m = msg("alice@example.com", 1, 1, "R1");
    let err = open.engine.end_of_message(&m).await.unwrap_err();
    assert_eq!(open.engine.state_failed(&err), Verdict::Pass);
    assert_eq!(open.engine.state_failed(&err), Verdict::Pass);
    let mut state_alerts = 0;
    while let Ok(a) = open.alerts.try_recv() {
        state_alerts += usize::from(matches!(a, Alert::State(_)));
    }
    assert_eq!(state_alerts, 1, "one alert, not one per request");
    let closed = setup(
        &format!("state_failure = \"closed\"\n{RULES}"),
        Some(redis()),
    );
    let err = closed.engine.end_of_message(&m).await.unwrap_err();
    assert!(
        matches!(closed.engine.state_failed(&err), Verdict::Defer(t) if t.starts_with("4.3.0"))
    );
}

#[tokio::test]
async fn the_window_slides_per_event_and_limits_combine() {
    let dir = tempfile::tempdir().unwrap();
    let c = Embedded::open(&dir.path().join("policy.db")).unwrap();
    let w = 60_000;
    let t0 = now_ms();
    let limits = Limits {
        messages: Some(2),
        recipients: Some(5),
        bytes: None,
    };
    assert!(
        c.try_add("a@x", t0, w, Usage::message(2, 10), limits)
            .await
            .unwrap()
            .0
    );
    assert!(
        c.try_add("a@x", t0 + 1000, w, Usage::message(3, 10), limits)
            .await
            .unwrap()
            .0
    );
    // Two messages and five recipients in the window: full on both counts.
    let (ok, before) = c
        .try_add("a@x", t0 + 2000, w, Usage::message(1, 1), limits)
        .await
        .unwrap();
    assert!(!ok);
    assert_eq!(
        before,
        Usage {
            messages: 2,
            recipients: 5,
            bytes: 20
        }
    );
    // The first event leaves the window exactly a window later; the second a second after.
    assert!(
        !c.try_add("a@x", t0 + w - 1, w, Usage::message(1, 1), limits)
            .await
            .unwrap()
            .0
    );
    let (ok, before) = c
        .try_add("a@x", t0 + w, w, Usage::message(1, 1), limits)
        .await
        .unwrap();
    assert!(ok, "{before:?}");
    assert_eq!(before.messages, 1);
    assert_eq!(
        Limits::default().exceeded(Usage::message(1_000_000, 1 << 40)),
        None
    );
    assert_eq!(
        limits.exceeded(Usage {
            messages: 1,
            recipients: 6,
            bytes: 0
        }),
        Some("recipients")
    );
    // A refund gives a message's count back, by queue ID.
    c.try_add_tagged(
        "b@x",
        t0,
        w,
        Usage::message(1, 1),
        Limits::default(),
        Some("QB"),
    )
    .await
    .unwrap();
    c.refund("b@x", "QB").await.unwrap();
    assert_eq!(c.usage("b@x", t0 + 1, w).await.unwrap(), Usage::default());
}

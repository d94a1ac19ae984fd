//! The monitor over rounds against the demo stack: one notification per state change (by
//! webhook and by mail through the demo's own MTA), none while a problem lasts, a recovery
//! when it clears, a restart noticed, and `/metrics` served.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailfleet_core::Config;
use mailfleet_notify::Kind;
use mailfleet_probe::monitor::{Monitor, serve_metrics};
use mailfleet_stack::{Layout, dovecot};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A webhook receiver on loopback: keeps each request body, answers 204.
async fn webhook() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&bodies);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read until the body announced by Content-Length is in.
            loop {
                let n = s.read(&mut chunk).await.unwrap_or(0);
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if body.len() >= len {
                        keep.lock().unwrap().push(body.to_string());
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let _ = s
                .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                .await;
        }
    });
    (url, bodies)
}

fn about(notes: &[mailfleet_notify::Notification], server: &str) -> Vec<(Kind, String)> {
    let mut v: Vec<(Kind, String)> = notes
        .iter()
        .filter(|n| n.server == server && !crate::common::resource_check(&n.check))
        .map(|n| (n.kind, n.check.clone()))
        .collect();
    v.sort_by(|a, b| a.1.cmp(&b.1));
    v
}

#[tokio::test]
async fn alarms_once_per_change_with_recovery_restart_and_metrics() {
    let stack = crate::common::backed_up_stack().await;
    let (url, bodies) = webhook().await;
    let text = std::fs::read_to_string(stack.config_path()).unwrap()
        + &format!(
            "\n[monitor]\nnotify_email = [\"alice@example.com\"]\nnotify_from = \"mailfleet@example.com\"\nwebhook_url = \"{url}\"\nconfirm_rounds = 2\n"
        );
    let config = Config::parse(&text, &stack.config_path()).expect("config");
    let data_dir = config.data_dir.clone();
    let mut monitor = Monitor::new(config).expect("monitor");
    let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = metrics.local_addr().unwrap();
    tokio::spawn(serve_metrics(
        metrics,
        monitor.latest(),
        mailfleet_core::shutdown::Shutdown::never(),
    ));
    let layout = Layout::new(&stack.base());
    let ports = stack.info.ports.clone();

    for _ in 0..2 {
        let (_, notes) = monitor.round().await;
        assert!(about(&notes, "store2").is_empty(), "{notes:?}");
    }
    dovecot::stop(&layout, "store2").expect("stop store2");
    let (_, notes) = monitor.round().await;
    assert!(
        about(&notes, "store2").is_empty(),
        "one bad round is not yet an alarm: {notes:?}"
    );
    let (_, notes) = monitor.round().await;
    let problems = about(&notes, "store2");
    assert_eq!(
        problems,
        [
            (Kind::Problem, "imap".to_string()),
            (Kind::Problem, "imaps".to_string()),
            (Kind::Problem, "lmtp".to_string()),
            (Kind::Problem, "pop3".to_string()),
            (Kind::Problem, "pop3s".to_string())
        ],
        "{notes:?}"
    );
    assert!(
        about(&notes, "mx1")
            .iter()
            .any(|(k, c)| *k == Kind::Problem && c == "e2e:store2"),
        "{notes:?}"
    );
    // The alarms are in the history, holding until their recovery.
    let alarms = mailfleet_probe::history::History::open(&data_dir)
        .unwrap()
        .alarms()
        .unwrap();
    let holding: Vec<String> = mailfleet_probe::alarm_log::active(&alarms)
        .into_iter()
        .filter(|a| a.latest.server == "store2" && !crate::common::resource_check(&a.latest.check))
        .map(|a| a.latest.check)
        .collect();
    assert_eq!(
        holding,
        ["imap", "imaps", "lmtp", "pop3", "pop3s"],
        "{alarms:?}"
    );
    // The problem lasts: no more notifications about it.
    for _ in 0..8 {
        let (_, notes) = monitor.round().await;
        assert!(about(&notes, "store2").is_empty(), "{notes:?}");
    }
    // store1 restarts between two rounds: noticed from its new start time.
    dovecot::stop(&layout, "store1").expect("stop store1");
    dovecot::start(
        &layout,
        "store1",
        crate::common::host_of(ports.stores[0].imap),
        &ports.stores[0],
    )
    .expect("start store1");
    // Rounds with store2 down so far: the first bad one, the alarm, the eight quiet ones.
    let mut down_rounds = 10;
    // A round whose read of store1's PID file fails under load keeps what it knew, so the
    // restart is noticed by the next one that can read it.
    let mut restart_seen = false;
    for _ in 0..3 {
        let (_, notes) = monitor.round().await;
        down_rounds += 1;
        if notes
            .iter()
            .any(|n| n.kind == Kind::Restart && n.server == "store1")
        {
            restart_seen = true;
            break;
        }
    }
    assert!(restart_seen, "store1's restart was never noticed");
    // store2 comes back: a recovery for each of its checks.
    dovecot::start(
        &layout,
        "store2",
        crate::common::host_of(ports.stores[1].imap),
        &ports.stores[1],
    )
    .expect("start store2");
    let mut recovered = Vec::new();
    // Two good rounds confirm a recovery; a round that times out under load delays it.
    for _ in 0..5 {
        if recovered.len() == 5 {
            break;
        }
        let (_, notes) = monitor.round().await;
        recovered.extend(
            about(&notes, "store2")
                .into_iter()
                .filter(|(k, _)| *k == Kind::Recovery)
                .map(|(_, c)| c),
        );
    }
    recovered.sort();
    assert_eq!(recovered, ["imap", "imaps", "lmtp", "pop3", "pop3s"]);
    let alarms = mailfleet_probe::history::History::open(&data_dir)
        .unwrap()
        .alarms()
        .unwrap();
    assert!(
        mailfleet_probe::alarm_log::active(&alarms)
            .iter()
            .all(|a| a.latest.server != "store2" || crate::common::resource_check(&a.latest.check)),
        "{alarms:?}"
    );
    assert_eq!(
        alarms
            .iter()
            .filter(|a| a.server == "store2"
                && a.kind == "recovery"
                && !crate::common::resource_check(&a.check))
            .count(),
        5,
        "{alarms:?}"
    );

    // The webhook got JSON notifications; the alarm mail arrived through the demo MTA.
    let got = bodies.lock().unwrap().clone();
    assert!(
        got.iter()
            .any(|b| b.contains("\"kind\":\"problem\"") && b.contains("\"server\":\"store2\"")),
        "{got:?}"
    );
    assert!(
        got.iter().any(|b| b.contains("\"kind\":\"recovery\"")),
        "{got:?}"
    );
    // Every alarm mail sent is delivered before counting: the rounds are over, so once
    // Postfix holds nothing more for alice (the end-to-end mail of the outage may wait in
    // the queue for store2), nothing more can come, and a duplicate would be counted.
    let conf = stack.base().join("mx1/conf");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let queued: Vec<_> = mailfleet_core::postfix::Postfix::local(Some(&conf))
            .queue(Duration::from_secs(10))
            .await
            .unwrap()
            .into_iter()
            .filter(|e| {
                e.recipients
                    .iter()
                    .any(|r| r.address == "alice@example.com")
            })
            .collect();
        if queued.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the alarm mail never left the queue: {queued:?}"
        );
        // An alarm sent while store1 restarted was deferred ("421 Shutting down"): Postfix
        // would retry in minutes; an admin flushes.
        let _ = mailfleet_core::postfix::Postfix::local(Some(&conf))
            .run("postqueue", &["-f"], Duration::from_secs(10))
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mail = crate::common::imap_find(
        ports.stores[0].imap,
        "alice@example.com",
        "PROBLEM store2 imap is",
    )
    .await;
    assert_eq!(mail.len(), 1, "exactly one alarm mail for store2 imap");

    // Every round is in the history: the export has store2's outage in imap.csv.
    let history = mailfleet_probe::history::History::open(&data_dir).unwrap();
    let out = stack.base().join("stats");
    history
        .export_csv(&out, chrono::Utc::now() - chrono::Duration::hours(1))
        .unwrap();
    let imap = std::fs::read_to_string(out.join("imap.csv")).unwrap();
    assert_eq!(
        imap.lines()
            .filter(|l| l.contains(",store2,imap,CRITICAL,"))
            .count(),
        down_rounds,
        "{imap}"
    );

    let host = metrics_addr.ip().to_string();
    let at = mailfleet_mailclient::Endpoint::plain(&host, metrics_addr.port());
    let (answer, body) =
        mailfleet_mailclient::http::get_body(&at, "/metrics", 1 << 20, &crate::common::clock())
            .await
            .unwrap();
    let page = String::from_utf8_lossy(&body);
    assert_eq!(answer.status, 200, "{page}");
    assert!(
        page.contains("mailfleet_check_state{server=\"store2\",check=\"imap\"} 0"),
        "{page}"
    );
}

/// Each MTA's traffic from its log: nothing at the first round (the log's end is found),
/// then the messages received since, as a rate per hour the history keeps for the charts.
#[tokio::test(flavor = "multi_thread")]
async fn the_monitor_counts_each_mtas_messages_from_its_log() {
    let stack = mailfleet_stack::TestStack::start().await.expect("stack");
    let config = stack.config().unwrap();
    let data_dir = config.data_dir.clone();
    let mx1 = config.fleet.server("mx1").unwrap().clone();
    let mut monitor = Monitor::new(config).expect("monitor");
    let traffic = |outcomes: &[mailfleet_probe::outcome::Outcome], server: &str| {
        outcomes
            .iter()
            .find(|o| o.server == server && o.check == "traffic")
            .cloned()
    };
    let (first, _) = monitor.round().await;
    assert!(traffic(&first, "mx1").is_none(), "{first:?}");
    let tag = crate::common::unique_tag("traffic");
    for i in 0..10 {
        crate::common::send_via(
            &mx1.host,
            mx1.ports.smtp.unwrap(),
            "bob@example.com",
            "alice@example.com",
            &format!("{tag} {i}"),
        )
        .await;
    }
    let imap = stack.info.ports.stores[0].imap;
    crate::common::wait_for_mail(
        imap,
        "alice@example.com",
        &format!("{tag} 9"),
        Duration::from_secs(60),
    )
    .await;
    let (second, _) = monitor.round().await;
    let o = traffic(&second, "mx1").unwrap_or_else(|| panic!("{second:?}"));
    assert_eq!(o.state, mailfleet_probe::State::Ok, "{o:?}");
    // The ten, and the first round's end-to-end probes' mail logged after its look.
    let received: u64 = o.message.split(' ').next().unwrap().parse().unwrap();
    assert!(received >= 10, "{o:?}");
    assert!(o.message.contains(&format!("{received} received")), "{o:?}");
    assert!(o.value.unwrap() > 0.0, "{o:?}");
    assert!(traffic(&second, "mx2").is_some(), "{second:?}");
    let history = mailfleet_probe::history::History::open(&data_dir).unwrap();
    let now = chrono::Utc::now();
    let lines = history
        // Read in the round's own second (it once was left out: the range ended before it).
        .series("traffic", now - chrono::Duration::hours(1), now, 120)
        .unwrap();
    let mx1_line = lines
        .iter()
        .find(|s| s.server == "mx1")
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(
        mx1_line
            .points
            .iter()
            .any(|p| p.max_value.is_some_and(|v| v > 0.0)),
        "{mx1_line:?}"
    );
}

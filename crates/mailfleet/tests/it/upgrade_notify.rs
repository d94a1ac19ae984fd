//! `upgrade notify` on the demo fleet, with a maintenance window on Wednesday nights
//! (Europe/Berlin) and an injected clock (`--at`): on the Monday before, every account of each
//! store (its probe account left out) gets its own store's window in its mailbox, through the
//! MTA, with the date and times of that store's step in the plan; a second call sends nothing;
//! within a day of the window each account gets its reminder, once.

use std::time::{Duration, Instant};

use mailfleet_stack::TestStack;
use mailfleet_stack::demo::{ACCOUNTS, PROBES};
use serde_json::Value;

use crate::common::{imap_find, mailfleet_json};

#[tokio::test(flavor = "multi_thread")]
async fn each_account_gets_its_stores_window_and_a_reminder_once() {
    let stack = TestStack::start().await.expect("stack");
    let base = std::fs::read_to_string(stack.config_path()).unwrap();
    let text = base.replacen(
        "name = \"store2\"\n",
        "name = \"store2\"\ndrain = \"queue\"\n",
        1,
    ) + "\n[monitor]\nnotify_from = \"mailfleet@example.com\"\n\n[upgrade]\nestimate = \"10m\"\n\
           soak = \"2m\"\ncanary_soak = \"0s\"\nspacing = { directory = \"0s\" }\n\
           timezone = \"Europe/Berlin\"\n[[upgrade.windows]]\n\
           days = [\"wed\"]\n\
           from = \"02:00\"\nto = \"05:00\"\n";
    let path = stack.config_path().with_file_name("notify.toml");
    std::fs::write(&path, text).unwrap();
    let c = path.to_str().unwrap();

    // A Monday noon: the window opens on Wednesday night.
    let first = mailfleet_json(c, &["upgrade", "notify", "--at", "2030-01-07T12:00:00Z"]);
    let windows: Vec<(
        String,
        chrono::DateTime<chrono::Utc>,
        chrono::DateTime<chrono::Utc>,
    )> = first["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["store"].as_str().unwrap().to_string(),
                w["start"].as_str().unwrap().parse().unwrap(),
                w["end"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(windows.len(), 2, "{first:#}");
    let users: Vec<(&str, &str)> = ACCOUNTS
        .iter()
        .copied()
        .filter(|(a, _)| !PROBES.iter().any(|(_, p)| p == a))
        .collect();
    let mails = |v: &Value, kind: &str| -> Vec<String> {
        let mut m: Vec<String> = v["mails"]
            .as_array()
            .unwrap()
            .iter()
            .inspect(|m| assert!(m["error"].is_null(), "{m:#}"))
            .filter(|m| m["kind"] == kind)
            .map(|m| m["address"].as_str().unwrap().to_string())
            .collect();
        m.sort();
        m
    };
    let mut want: Vec<String> = users.iter().map(|(a, _)| a.to_string()).collect();
    want.sort();
    assert_eq!(mails(&first, "notice"), want, "{first:#}");

    // Each account's own store's window, in the windows' time zone.
    let tz = chrono_tz::Europe::Berlin;
    for (user, store) in &users {
        let (_, start, end) = windows.iter().find(|(s, _, _)| s == store).unwrap();
        let date = start.with_timezone(&tz).format("%A, %Y-%m-%d").to_string();
        let times = format!(
            "between {} and {} (Europe/Berlin)",
            start.with_timezone(&tz).format("%H:%M"),
            end.with_timezone(&tz).format("%H:%M")
        );
        let n = stack
            .info
            .ports
            .stores
            .get(if *store == "store1" { 0 } else { 1 })
            .unwrap()
            .imap;
        let deadline = Instant::now() + Duration::from_secs(60);
        let got = loop {
            let got = imap_find(n, user, &format!("mailbox server on {date}")).await;
            if !got.is_empty() || Instant::now() > deadline {
                break got;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(got.len(), 1, "{user}: the notice for {store} on {date}");
        let body = String::from_utf8_lossy(&got[0]).replace("\r\n", "\n");
        assert!(body.contains(&times), "{user}: {body}");
        assert!(body.contains(&format!("({store})")), "{user}: {body}");
        assert!(body.contains("nothing is lost"), "{user}: {body}");
    }

    // Nothing twice.
    let again = mailfleet_json(c, &["upgrade", "notify", "--at", "2030-01-07T13:00:00Z"]);
    assert_eq!(again["mails"], serde_json::json!([]), "{again:#}");

    // Within a day of the windows: the reminders, once.
    let last = windows.iter().map(|(_, s, _)| *s).min().unwrap();
    let at = (last - chrono::Duration::hours(2)).to_rfc3339();
    let reminded = mailfleet_json(c, &["upgrade", "notify", "--at", &at]);
    assert_eq!(mails(&reminded, "reminder"), want, "{reminded:#}");
    assert!(mails(&reminded, "notice").is_empty());
    let again = mailfleet_json(c, &["upgrade", "notify", "--at", &at]);
    assert_eq!(again["mails"], serde_json::json!([]), "{again:#}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while imap_find(
        stack.info.ports.stores[1].imap,
        "erin@example.com",
        "Reminder",
    )
    .await
    .is_empty()
    {
        assert!(Instant::now() < deadline, "erin's reminder never arrived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

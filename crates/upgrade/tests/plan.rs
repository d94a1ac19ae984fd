#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The upgrade plan of a fleet shaped like the demo's: the order, the reasons and gates, and
//! the timeline's spacing, canary soak and windows, all from an injected clock.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use mailfleet_upgrade::{PlanError, PlanInput, plan};

const FLEET: &str = r#"
[upgrade]
spacing = { directory = "1h", mta = "10m" }
soak = "2m"
canary_soak = "30m"
estimate = "15m"
UPGRADE_EXTRA

[[server]]
name = "ldap2"
roles = ["directory"]
host = "127.0.0.12"
ports = { ldap = 389 }
replica_of = "ldap1"
[[server]]
name = "ldap1"
roles = ["directory"]
host = "127.0.0.11"
ports = { ldap = 389 }
[[server]]
name = "mx2"
roles = ["mta"]
host = "127.0.0.22"
ports = { smtp = 25 }
group = "mx"
[[server]]
name = "mx1"
roles = ["mta"]
host = "127.0.0.21"
ports = { smtp = 25 }
group = "mx"
[[server]]
name = "proxy1"
roles = ["proxy"]
host = "127.0.0.41"
ports = { imap = 143 }
[[server]]
name = "store1"
roles = ["mailbox"]
host = "127.0.0.31"
ports = { imap = 143, lmtp = 24 }
maildir_root = "/srv/mail"
[[server]]
name = "store2"
roles = ["mailbox"]
host = "127.0.0.32"
ports = { imap = 143, lmtp = 24 }
maildir_root = "/srv/mail"
canary = true
drain = "queue"
"#;

fn config(extra: &str) -> mailfleet_core::Config {
    let dir = tempfile::tempdir().unwrap();
    mailfleet_core::Config::parse(
        &FLEET.replace("UPGRADE_EXTRA", extra),
        &dir.path().join("mailfleet.toml"),
    )
    .unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn input(now: &str) -> PlanInput {
    PlanInput {
        now: utc(now),
        servers: Vec::new(),
        packages: Vec::new(),
        backups: BTreeMap::from([
            ("store1".to_string(), Ok(Some(utc("2026-12-02T10:00:00Z")))),
            ("store2".to_string(), Ok(None)),
        ]),
    }
}

#[test]
fn the_fleet_goes_in_role_order_with_the_canary_first_and_spaced() {
    let c = config("");
    let p = plan(&c.fleet, &c.upgrade, &input("2026-12-02T12:00:00Z")).unwrap();
    let order: Vec<&str> = p.steps.iter().map(|s| s.server.as_str()).collect();
    assert_eq!(
        order,
        ["ldap1", "ldap2", "mx1", "mx2", "proxy1", "store2", "store1"]
    );
    let step = |n: &str| p.steps.iter().find(|s| s.server == n).unwrap();
    // The master at once; its replica an hour after the master's end (15 min + 2 min soak).
    assert_eq!(step("ldap1").start, utc("2026-12-02T12:00:00Z"));
    assert!(
        step("ldap1")
            .before
            .iter()
            .any(|g| g == "replicas ldap2 in sync with it")
    );
    assert_eq!(step("ldap2").start, utc("2026-12-02T13:17:00Z"));
    assert_eq!(step("ldap2").waits, ["1 h after ldap1 (directory spacing)"]);
    // MTAs right after, 10 minutes apart; mx2 waits for mx1 to be back in its group.
    assert_eq!(step("mx1").start, utc("2026-12-02T13:34:00Z"));
    assert_eq!(step("mx2").start, utc("2026-12-02T14:01:00Z"));
    assert!(
        step("mx2")
            .before
            .iter()
            .any(|g| g == "group mx: mx1 OK (at least 1 of 2 up while mx2 is down)"),
        "{:?}",
        step("mx2").before
    );
    // The canary store first; the other store waits out its soak.
    let canary = step("store2");
    assert!(canary.canary && canary.why.contains("canary"));
    assert!(
        canary
            .drain
            .as_deref()
            .unwrap()
            .contains("deferred at the MTAs")
    );
    assert!(
        canary
            .before
            .iter()
            .any(|g| g.contains("backup of it right before (none has succeeded yet)"))
    );
    let store1 = step("store1");
    assert_eq!(
        store1.start,
        canary.start + chrono::Duration::minutes(17 + 30)
    );
    assert_eq!(store1.waits, ["the canary store2 watched for 30 min"]);
    assert!(
        store1
            .drain
            .as_deref()
            .unwrap()
            .contains("move drain store1")
    );
    // Its backup of 10:00 is older than the default 24 h? No: 2 h old.
    assert!(
        store1
            .before
            .iter()
            .any(|g| g.starts_with("a good backup newer than 24 h")),
        "{:?}",
        store1.before
    );
    assert!(store1.after.iter().any(|g| g.contains("move back store1")));
    // A single proxy and every store are worth a word.
    assert!(
        p.warnings
            .iter()
            .any(|w| w.starts_with("proxy1: no redundancy"))
    );
    assert_eq!(p.ends, store1.start + chrono::Duration::minutes(17));
}

#[test]
fn steps_start_only_in_a_maintenance_window_of_its_time_zone() {
    let c = config(
        r#"timezone = "Europe/Berlin"
[[upgrade.windows]]
days = ["sat", "sun"]
from = "01:00"
to = "03:00""#,
    );
    // Wednesday noon: nothing before Saturday 01:00 Berlin (00:00 UTC).
    let p = plan(&c.fleet, &c.upgrade, &input("2026-12-02T12:00:00Z")).unwrap();
    assert_eq!(p.timezone, "Europe/Berlin");
    assert_eq!(p.windows, ["sat,sun 01:00-03:00"]);
    let first = &p.steps[0];
    assert_eq!(first.start, utc("2026-12-05T00:00:00Z"));
    assert!(first.waits[0].starts_with("the next maintenance window (Sat 2026-12-05 01:00 CET)"));
    for s in &p.steps {
        let local = s.start.with_timezone(&chrono_tz::Europe::Berlin);
        let h = chrono::Timelike::hour(&local);
        assert!((1..3).contains(&h), "{} starts at {local}", s.server);
    }
    // What does not fit on Saturday goes on Sunday.
    let days: std::collections::BTreeSet<_> = p
        .steps
        .iter()
        .map(|s| {
            s.start
                .with_timezone(&chrono_tz::Europe::Berlin)
                .date_naive()
        })
        .collect();
    assert!(days.len() >= 2, "{days:?}");
}

#[test]
fn a_group_that_must_keep_every_server_up_cannot_be_upgraded() {
    let c = config("min_up = { mx = 2 }");
    let e = plan(&c.fleet, &c.upgrade, &input("2026-12-02T12:00:00Z")).unwrap_err();
    assert!(matches!(e, PlanError::MinUp { ref group, min_up: 2, size: 2 } if group == "mx"));
    assert!(e.to_string().contains("min_up.mx"));
}

#[test]
fn only_the_servers_asked_for() {
    let c = config("");
    let mut i = input("2026-12-02T12:00:00Z");
    i.servers = vec!["store1".into(), "mx2".into()];
    let p = plan(&c.fleet, &c.upgrade, &i).unwrap();
    let order: Vec<&str> = p.steps.iter().map(|s| s.server.as_str()).collect();
    assert_eq!(order, ["mx2", "store1"]);
    i.servers = vec!["nosuch".into()];
    assert!(matches!(
        plan(&c.fleet, &c.upgrade, &i),
        Err(PlanError::UnknownServer(s)) if s == "nosuch"
    ));
}

#[test]
fn bad_upgrade_settings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, key) in [
        ("timezone = \"Mars/Olympus\"", "upgrade.timezone"),
        ("backup_max_age = \"soon\"", "upgrade.backup_max_age"),
        (
            "spacing = { database = \"1h\" }",
            "upgrade.spacing.database",
        ),
        ("min_up = { nosuch = 1 }", "upgrade.min_up.nosuch"),
        (
            "[[upgrade.windows]]\ndays = [\"someday\"]\nfrom = \"01:00\"\nto = \"05:00\"",
            "upgrade.windows[0].days",
        ),
        (
            "[[upgrade.windows]]\ndays = [\"sat\"]\nfrom = \"1am\"\nto = \"05:00\"",
            "upgrade.windows[0].from",
        ),
    ] {
        // A key the base sets already is replaced there.
        let base_spacing = "spacing = { directory = \"1h\", mta = \"10m\" }";
        let text = if extra.starts_with("spacing") {
            FLEET
                .replace(base_spacing, extra)
                .replace("UPGRADE_EXTRA", "")
        } else {
            FLEET.replace("UPGRADE_EXTRA", extra)
        };
        let e = mailfleet_core::Config::parse(&text, &dir.path().join("mailfleet.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(key), "{extra}: {e}");
    }
}

#[test]
fn automatic_reboots_follow_the_order_and_never_take_two_of_a_group() {
    let c = config("reboot_from = \"01:00\"\nreboot_slot = \"15m\"");
    let (reboots, warning) = mailfleet_upgrade::reboots::reboot_times(&c.fleet, &c.upgrade);
    assert!(warning.is_none());
    let at = |n: &str| reboots.iter().find(|r| r.server == n).unwrap();
    let time = |h: u32, m: u32| chrono::NaiveTime::from_hms_opt(h, m, 0).unwrap();
    // The directory first, an hour apart (the directory spacing, in 15-minute slots).
    assert_eq!(at("ldap1").at, time(1, 0));
    assert_eq!(at("ldap2").at, time(2, 0));
    // Then the MTAs, one of the group per slot; the lone proxy beside the first.
    assert_eq!(at("mx1").at, time(2, 15));
    assert_eq!(at("mx2").at, time(2, 30));
    assert_eq!(at("proxy1").at, time(2, 15));
    // Then the stores, after every MTA and proxy.
    assert!(at("store1").at > at("mx2").at && at("store2").at > at("mx2").at);
    for a in &reboots {
        for b in &reboots {
            if a.server != b.server && a.group.is_some() && a.group == b.group {
                assert_ne!(a.slot, b.slot, "{} and {} share a slot", a.server, b.server);
            }
        }
    }
    // Slots past a day are said.
    let c = config("reboot_slot = \"12h\"");
    let (_, warning) = mailfleet_upgrade::reboots::reboot_times(&c.fleet, &c.upgrade);
    assert!(warning.unwrap().contains("more than a day"));
}

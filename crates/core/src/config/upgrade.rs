//! `[upgrade]`: how rolling upgrades are ordered and paced (spacing per role, soak times,
//! redundancy per group, maintenance windows in a time zone, backups around a store's
//! update), and the per-server keys they read (`canary`, `drain`).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{NaiveTime, Weekday};
use serde::{Deserialize, Serialize};

use super::validate::Problems;
use super::validate_move::parse_duration;
use crate::fleet::Role;

/// How a store is emptied before its update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Drain {
    /// Its mailboxes are moved to other stores first (`move drain`), and back after.
    Move,
    /// Its inbound mail waits in the MTAs' queues while it is down, delivered once it is back.
    Queue,
}

/// When upgrades may start: on these days, from `from` until `to` (local time; a window that
/// ends before it starts runs past midnight into the next day).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window {
    /// The days it opens on (Monday first, each once).
    pub days: Vec<Weekday>,
    /// When it opens.
    pub from: NaiveTime,
    /// When it closes.
    pub to: NaiveTime,
}

/// Upgrade settings.
#[derive(Debug, Clone, Serialize)]
pub struct UpgradeConfig {
    /// Time between the ends of two servers' updates in one role (directory: 1 h unless set).
    pub spacing: BTreeMap<Role, Duration>,
    /// How long probes must stay OK after each server's update before the next one.
    pub soak: Duration,
    /// How long a canary's update is watched before the rest of its role follows.
    pub canary_soak: Duration,
    /// What one server's update is expected to take, for the plan's timeline.
    pub estimate: Duration,
    /// Servers of each group that must stay up (unset: all but one).
    pub min_up: BTreeMap<String, usize>,
    /// When updates may start (none: any time).
    pub windows: Vec<Window>,
    /// The time zone of the windows.
    #[serde(serialize_with = "tz_name")]
    pub timezone: chrono_tz::Tz,
    /// A store needs a good backup newer than this before its update, or one is taken then.
    pub backup_max_age: Duration,
    /// How stores are emptied unless a server says otherwise.
    pub drain: Drain,
    /// Packages the fleet patches itself (globs), kept out of the OS's automatic updates.
    pub managed: Vec<String>,
    /// When the first of the staggered automatic reboots may happen (local time).
    pub reboot_from: NaiveTime,
    /// Time each automatic reboot is given before the next of its group.
    pub reboot_slot: Duration,
    /// How long a restarted service may take until its PID file names a new process.
    pub restart_timeout: Duration,
    /// How long a rebooted server may take until it answers again.
    pub reboot_timeout: Duration,
    /// How long a store's step waits for a backup of it that runs to end.
    pub backup_wait: Duration,
    /// How long a step waits for every directory replica to have its master's changes.
    pub replica_wait: Duration,
    /// The template mailed to each account of a store before its update (`upgrade notify`).
    pub user_notice: Option<std::path::PathBuf>,
    /// The template of the reminder the day before (unset: the notice again).
    pub user_reminder: Option<std::path::PathBuf>,
}

/// The packages held unless `[upgrade] managed` says otherwise: the mail stack's own.
const MANAGED: &[&str] = &[
    "zimbra-*",
    "postfix",
    "postfix-*",
    "dovecot-*",
    "slapd",
    "slapd-*",
    "redis-server",
];

fn tz_name<S: serde::Serializer>(tz: &chrono_tz::Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

/// `[upgrade]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpgrade {
    pub(crate) spacing: Option<BTreeMap<String, String>>,
    pub(crate) soak: Option<String>,
    pub(crate) canary_soak: Option<String>,
    pub(crate) estimate: Option<String>,
    pub(crate) min_up: Option<BTreeMap<String, i64>>,
    pub(crate) windows: Option<Vec<RawWindow>>,
    pub(crate) timezone: Option<String>,
    pub(crate) backup_max_age: Option<String>,
    pub(crate) drain: Option<Drain>,
    pub(crate) managed: Option<Vec<String>>,
    pub(crate) reboot_from: Option<String>,
    pub(crate) reboot_slot: Option<String>,
    pub(crate) restart_timeout: Option<String>,
    pub(crate) reboot_timeout: Option<String>,
    pub(crate) backup_wait: Option<String>,
    pub(crate) replica_wait: Option<String>,
    pub(crate) user_notice: Option<std::path::PathBuf>,
    pub(crate) user_reminder: Option<std::path::PathBuf>,
}

/// One `[[upgrade.windows]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWindow {
    pub(crate) days: Vec<String>,
    pub(crate) from: String,
    pub(crate) to: String,
}

fn duration(v: &Option<String>, key: &str, default: Duration, p: &mut Problems) -> Duration {
    match v.as_deref().map(parse_duration) {
        None => default,
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            p.add(format!("upgrade.{key}"), e);
            default
        }
    }
}

fn day(text: &str) -> Option<Weekday> {
    let t = text.to_ascii_lowercase();
    [
        ("mon", "monday", Weekday::Mon),
        ("tue", "tuesday", Weekday::Tue),
        ("wed", "wednesday", Weekday::Wed),
        ("thu", "thursday", Weekday::Thu),
        ("fri", "friday", Weekday::Fri),
        ("sat", "saturday", Weekday::Sat),
        ("sun", "sunday", Weekday::Sun),
    ]
    .into_iter()
    .find(|(short, long, _)| t == *short || t == *long)
    .map(|(_, _, d)| d)
}

fn window(i: usize, w: &RawWindow, p: &mut Problems) -> Option<Window> {
    let key = format!("upgrade.windows[{i}]");
    let mut days = Vec::new();
    for d in &w.days {
        match day(d) {
            Some(x) if !days.contains(&x) => days.push(x),
            Some(_) => {}
            None => p.add(
                format!("{key}.days"),
                format!("{d:?} is not a day (mon ... sun)"),
            ),
        }
    }
    if w.days.is_empty() {
        p.add(format!("{key}.days"), "is empty: name the days it opens on");
    }
    let time = |t: &str, k: &str, p: &mut Problems| match NaiveTime::parse_from_str(t, "%H:%M") {
        Ok(x) => Some(x),
        Err(_) => {
            p.add(
                format!("{key}.{k}"),
                format!("{t:?} is not a time like 02:30"),
            );
            None
        }
    };
    let (from, to) = (time(&w.from, "from", p), time(&w.to, "to", p));
    match (from, to) {
        (Some(from), Some(to)) if from == to => {
            p.add(
                format!("{key}.to"),
                "equals from: the window would be empty",
            );
            None
        }
        (Some(from), Some(to)) if !days.is_empty() => {
            days.sort_by_key(|d| d.num_days_from_monday());
            Some(Window { days, from, to })
        }
        _ => None,
    }
}

pub(crate) fn upgrade(r: &RawUpgrade, base: &std::path::Path, p: &mut Problems) -> UpgradeConfig {
    let template = |f: &Option<std::path::PathBuf>, key: &str, p: &mut Problems| {
        let f = base.join(f.as_ref()?);
        if let Err(e) = std::fs::read_to_string(&f) {
            p.add(
                format!("upgrade.{key}"),
                format!("{}: cannot be read: {e}", f.display()),
            );
        }
        Some(f)
    };
    let user_notice = template(&r.user_notice, "user_notice", p);
    let user_reminder = template(&r.user_reminder, "user_reminder", p);
    let mut spacing = BTreeMap::from([(Role::Directory, Duration::from_secs(3600))]);
    for (role, d) in r.spacing.iter().flatten() {
        let key = format!("upgrade.spacing.{role}");
        match (role.parse::<Role>(), parse_duration(d)) {
            (Ok(role), Ok(d)) => {
                spacing.insert(role, d);
            }
            (Err(e), _) => p.add(key, e),
            (_, Err(e)) => p.add(key, e),
        }
    }
    let mut min_up = BTreeMap::new();
    for (group, n) in r.min_up.iter().flatten() {
        if *n < 0 {
            p.add(format!("upgrade.min_up.{group}"), format!("{n} is below 0"));
        } else {
            min_up.insert(group.clone(), *n as usize);
        }
    }
    let timezone = match &r.timezone {
        None => chrono_tz::UTC,
        Some(t) => t.parse().unwrap_or_else(|_| {
            p.add(
                "upgrade.timezone",
                format!("{t:?} is not a time zone name like Europe/Berlin or UTC"),
            );
            chrono_tz::UTC
        }),
    };
    let managed = match &r.managed {
        None => MANAGED.iter().map(|m| (*m).to_string()).collect(),
        Some(list) => {
            for (i, m) in list.iter().enumerate() {
                if m.is_empty() || m.contains(|c: char| c.is_whitespace() || c == '"' || c == ',') {
                    p.add(
                        format!("upgrade.managed[{i}]"),
                        format!("{m:?} is not a package name or glob"),
                    );
                }
            }
            list.clone()
        }
    };
    let reboot_from = match r.reboot_from.as_deref() {
        None => NaiveTime::from_hms_opt(2, 0, 0).unwrap_or_default(),
        Some(t) => NaiveTime::parse_from_str(t, "%H:%M").unwrap_or_else(|_| {
            p.add(
                "upgrade.reboot_from",
                format!("{t:?} is not a time like 02:30"),
            );
            NaiveTime::default()
        }),
    };
    let reboot_slot = duration(&r.reboot_slot, "reboot_slot", Duration::from_secs(900), p);
    if reboot_slot < Duration::from_secs(60) {
        p.add("upgrade.reboot_slot", "is shorter than a minute");
    }
    UpgradeConfig {
        managed,
        reboot_from,
        reboot_slot: reboot_slot.max(Duration::from_secs(60)),
        user_notice,
        user_reminder,
        restart_timeout: duration(
            &r.restart_timeout,
            "restart_timeout",
            Duration::from_secs(120),
            p,
        ),
        backup_wait: duration(&r.backup_wait, "backup_wait", Duration::from_secs(7200), p),
        replica_wait: duration(&r.replica_wait, "replica_wait", Duration::from_secs(300), p),
        reboot_timeout: duration(
            &r.reboot_timeout,
            "reboot_timeout",
            Duration::from_secs(900),
            p,
        ),
        spacing,
        soak: duration(&r.soak, "soak", Duration::from_secs(120), p),
        canary_soak: duration(&r.canary_soak, "canary_soak", Duration::from_secs(1800), p),
        estimate: duration(&r.estimate, "estimate", Duration::from_secs(900), p),
        min_up,
        windows: r
            .windows
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, w)| window(i, w, p))
            .collect(),
        timezone,
        backup_max_age: duration(
            &r.backup_max_age,
            "backup_max_age",
            Duration::from_secs(86_400),
            p,
        ),
        drain: r.drain.unwrap_or(Drain::Move),
    }
}

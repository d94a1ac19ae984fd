//! A record of an alarm sent, as the monitor keeps them and the dashboard shows them, and
//! which alarms still hold after a list of them.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::alarm::Kind;

/// One alarm sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmRecord {
    /// When.
    pub at: DateTime<Utc>,
    /// `problem`, `reminder`, `recovery`, `flapping` or `restart`.
    pub kind: String,
    /// The server.
    pub server: String,
    /// The check.
    pub check: String,
    /// Its state then.
    pub state: String,
    /// What the check found.
    pub message: String,
}

/// An alarm that holds: a server's check in trouble since its first problem.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActiveAlarm {
    /// Since when (its first problem of this run of trouble).
    pub since: DateTime<Utc>,
    /// The latest alarm about it.
    pub latest: AlarmRecord,
}

/// How a record names a kind.
pub fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Problem => "problem",
        Kind::Reminder => "reminder",
        Kind::Recovery => "recovery",
        Kind::Flapping => "flapping",
        Kind::Restart => "restart",
    }
}

/// The alarms that hold after `alarms` (oldest first): per server's check, trouble not
/// followed by a recovery. A restart is an event, not a state.
pub fn active(alarms: &[AlarmRecord]) -> Vec<ActiveAlarm> {
    let mut open: std::collections::BTreeMap<(String, String), ActiveAlarm> = Default::default();
    for a in alarms {
        let key = (a.server.clone(), a.check.clone());
        match a.kind.as_str() {
            "recovery" => {
                open.remove(&key);
            }
            "restart" => {}
            _ => {
                let since = open.get(&key).map_or(a.at, |o| o.since);
                open.insert(
                    key,
                    ActiveAlarm {
                        since,
                        latest: a.clone(),
                    },
                );
            }
        }
    }
    open.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(at: i64, kind: &str, check: &str) -> AlarmRecord {
        AlarmRecord {
            at: DateTime::from_timestamp(at, 0).unwrap(),
            kind: kind.into(),
            server: "store2".into(),
            check: check.into(),
            state: "CRITICAL".into(),
            message: format!("{kind} {at}"),
        }
    }

    #[test]
    fn trouble_holds_until_its_recovery() {
        let log = [
            rec(1, "problem", "imap"),
            rec(2, "problem", "pop3"),
            rec(3, "restart", "process"),
            rec(4, "reminder", "imap"),
            rec(5, "recovery", "pop3"),
        ];
        let a = active(&log);
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].latest.check, "imap");
        assert_eq!(a[0].since.timestamp(), 1);
        assert_eq!(a[0].latest.message, "reminder 4");
        assert!(active(&log[..0]).is_empty());
    }
}

//! The alarms the monitor sent, kept in the history beside the samples (table `alarms`) for
//! the retention period: the dashboard's past alarms, and the active ones (each server's
//! check whose latest alarm is a problem not yet followed by a recovery).

use chrono::{DateTime, Utc};
use mailfleet_notify::{Kind, Notification};
use rusqlite::{Connection, Transaction, params};
use serde::Serialize;

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

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Problem => "problem",
        Kind::Reminder => "reminder",
        Kind::Recovery => "recovery",
        Kind::Flapping => "flapping",
        Kind::Restart => "restart",
    }
}

/// Makes the table.
pub(crate) fn create(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS alarms (
            at INTEGER NOT NULL, kind TEXT NOT NULL, server TEXT NOT NULL,
            check_name TEXT NOT NULL, state TEXT NOT NULL, message TEXT NOT NULL);
         CREATE INDEX IF NOT EXISTS alarms_at ON alarms(at);",
    )
}

/// Adds the alarms sent at `at`.
pub(crate) fn add(tx: &Transaction<'_>, at: i64, sent: &[Notification]) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached("INSERT INTO alarms VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
    for n in sent {
        stmt.execute(params![
            at,
            kind_name(n.kind),
            n.server,
            n.check,
            n.state.to_string(),
            n.message
        ])?;
    }
    Ok(())
}

/// Forgets the alarms before `cutoff`.
pub(crate) fn forget(tx: &Transaction<'_>, cutoff: i64) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM alarms WHERE at < ?1", params![cutoff])
        .map(|_| ())
}

/// Every alarm kept, oldest first.
pub(crate) fn all(conn: &Connection) -> rusqlite::Result<Vec<AlarmRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT at, kind, server, check_name, state, message FROM alarms ORDER BY at, rowid",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(AlarmRecord {
            at: DateTime::from_timestamp(r.get(0)?, 0).unwrap_or_default(),
            kind: r.get(1)?,
            server: r.get(2)?,
            check: r.get(3)?,
            state: r.get(4)?,
            message: r.get(5)?,
        })
    })?;
    rows.collect()
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

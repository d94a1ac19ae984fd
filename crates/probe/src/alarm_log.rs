//! The alarms the monitor sent, kept in the history beside the samples (table `alarms`) for
//! the retention period; the records and which of them hold are `notify::record`'s.

use chrono::DateTime;
use mailfleet_notify::Notification;
use mailfleet_notify::record::kind_name;
pub use mailfleet_notify::record::{ActiveAlarm, AlarmRecord, active};
use rusqlite::{Connection, Transaction, params};

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

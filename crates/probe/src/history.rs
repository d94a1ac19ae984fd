//! Every monitor sample (and every alarm sent, see [`crate::alarm_log`]) kept in an embedded
//! SQLite store (`DATA_DIR/history.db`) for the retention period, and exported as CSV files per check family, as zmstat keeps them
//! (`imap.csv`, `disk.csv`, `e2e.csv`...).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mailfleet_core::series::Series;
use rusqlite::{Connection, params};

use crate::outcome::Outcome;

/// Why the history failed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The database failed.
    #[error("{path}: {source}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// The error.
        source: rusqlite::Error,
    },
    /// Writing CSV failed.
    #[error("{path}: {message}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// The error.
        message: String,
    },
}

/// The sample store.
pub struct History {
    path: PathBuf,
    conn: Connection,
}

/// The family of a check: what comes before `:` (`disk:/var` is `disk`).
pub fn family(check: &str) -> &str {
    check.split(':').next().unwrap_or(check)
}

impl History {
    /// Opens (creating) the store in the data directory.
    pub fn open(data_dir: &Path) -> Result<Self, HistoryError> {
        let path = data_dir.join("history.db");
        let err = |source| HistoryError::Sqlite {
            path: path.clone(),
            source,
        };
        if let Err(e) = std::fs::create_dir_all(data_dir) {
            return Err(HistoryError::Csv {
                path: data_dir.to_path_buf(),
                message: e.to_string(),
            });
        }
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS samples (
                at INTEGER NOT NULL, server TEXT NOT NULL, family TEXT NOT NULL, check_name TEXT NOT NULL,
                state TEXT NOT NULL, elapsed_ms REAL NOT NULL, message TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS samples_at ON samples(at);
             CREATE INDEX IF NOT EXISTS samples_family_at ON samples(family, at);",
        )
        .map_err(err)?;
        // Stores written before charts measured quantities have no `value` column.
        let has_value = conn
            .prepare("SELECT 1 FROM pragma_table_info('samples') WHERE name = 'value'")
            .and_then(|mut s| s.exists([]))
            .map_err(err)?;
        if !has_value {
            conn.execute_batch("ALTER TABLE samples ADD COLUMN value REAL")
                .map_err(err)?;
        }
        crate::rollup::create(&conn).map_err(err)?;
        crate::alarm_log::create(&conn).map_err(err)?;
        Ok(History { path, conn })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> HistoryError + '_ {
        |source| HistoryError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Records one round taken at `at`, and forgets samples older than `retention`.
    pub fn record(
        &mut self,
        at: DateTime<Utc>,
        outcomes: &[Outcome],
        retention: Duration,
    ) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let err = move |source| HistoryError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(&err)?;
        {
            let mut stmt = tx
                .prepare_cached("INSERT INTO samples (at, server, family, check_name, state, elapsed_ms, message, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
                .map_err(&err)?;
            for o in outcomes {
                stmt.execute(params![
                    at.timestamp(),
                    o.server,
                    family(&o.check),
                    o.check,
                    o.state.to_string(),
                    o.elapsed_ms,
                    o.message,
                    o.value
                ])
                .map_err(&err)?;
            }
        }
        crate::rollup::add(&tx, at.timestamp(), outcomes).map_err(&err)?;
        let cutoff = at.timestamp() - retention.as_secs() as i64;
        tx.execute("DELETE FROM samples WHERE at < ?1", params![cutoff])
            .map_err(&err)?;
        crate::rollup::forget(&tx, cutoff).map_err(&err)?;
        crate::alarm_log::forget(&tx, cutoff).map_err(&err)?;
        tx.commit().map_err(&err)
    }

    /// Records the alarms sent at `at` (kept as long as the samples).
    pub fn record_alarms(
        &mut self,
        at: DateTime<Utc>,
        sent: &[mailfleet_notify::Notification],
    ) -> Result<(), HistoryError> {
        if sent.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let err = move |source| HistoryError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(&err)?;
        crate::alarm_log::add(&tx, at.timestamp(), sent).map_err(&err)?;
        tx.commit().map_err(&err)
    }

    /// Every alarm kept, oldest first (see [`crate::alarm_log::active`] for those holding).
    pub fn alarms(&self) -> Result<Vec<crate::alarm_log::AlarmRecord>, HistoryError> {
        crate::alarm_log::all(&self.conn).map_err(self.err())
    }

    /// The samples of the checks of `family` between `since` and `until`, each server's
    /// check as one series of about `buckets` equal spans (see [`crate::rollup`]).
    pub fn series(
        &self,
        family: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        buckets: u32,
    ) -> Result<Vec<Series>, HistoryError> {
        crate::rollup::series(&self.conn, family, since, until, buckets).map_err(self.err())
    }

    /// Writes one CSV per check family with the samples since `since`; returns the files.
    pub fn export_csv(
        &self,
        dir: &Path,
        since: DateTime<Utc>,
    ) -> Result<Vec<PathBuf>, HistoryError> {
        let csv_err = |path: &Path, e: &dyn std::fmt::Display| HistoryError::Csv {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| csv_err(dir, &e))?;
        let mut stmt = self
            .conn
            .prepare("SELECT at, server, family, check_name, state, elapsed_ms, message FROM samples WHERE at >= ?1 ORDER BY at, server, check_name")
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![since.timestamp()], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, f64>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })
            .map_err(self.err())?;
        let mut writers: BTreeMap<String, (PathBuf, csv::Writer<std::fs::File>)> = BTreeMap::new();
        for row in rows {
            let (at, server, fam, check, state, ms, message) = row.map_err(self.err())?;
            if !writers.contains_key(&fam) {
                // Family names come from check names: keep the file name tame.
                let safe: String = fam
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let path = dir.join(format!("{safe}.csv"));
                let mut w = csv::Writer::from_path(&path).map_err(|e| csv_err(&path, &e))?;
                w.write_record([
                    "timestamp",
                    "server",
                    "check",
                    "state",
                    "elapsed_ms",
                    "message",
                ])
                .map_err(|e| csv_err(&path, &e))?;
                writers.insert(fam.clone(), (path, w));
            }
            if let Some((path, w)) = writers.get_mut(&fam) {
                let ts = DateTime::from_timestamp(at, 0)
                    .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                    .unwrap_or_default();
                w.write_record([ts, server, check, state, format!("{ms:.1}"), message])
                    .map_err(|e| csv_err(path, &e))?;
            }
        }
        let mut out = Vec::new();
        for (_, (path, mut w)) in writers {
            w.flush().map_err(|e| csv_err(&path, &e))?;
            out.push(path);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::State;

    fn o(server: &str, check: &str, state: State) -> Outcome {
        Outcome {
            server: server.into(),
            check: check.into(),
            state,
            elapsed_ms: 12.5,
            steps: vec![],
            message: "m, with comma".into(),
            value: None,
        }
    }

    #[test]
    fn series_buckets_means_values_and_worst_state() {
        let dir = tempfile::tempdir().unwrap();
        // A store from before `value` existed is given the column on open.
        let old = Connection::open(dir.path().join("history.db")).unwrap();
        old.execute_batch("CREATE TABLE samples (at INTEGER NOT NULL, server TEXT NOT NULL, family TEXT NOT NULL, check_name TEXT NOT NULL, state TEXT NOT NULL, elapsed_ms REAL NOT NULL, message TEXT NOT NULL);
             INSERT INTO samples VALUES (0, 'mx1', 'queue', 'queue', 'OK', 1.0, 'old');")
            .unwrap();
        drop(old);
        let mut h = History::open(dir.path()).unwrap();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let keep = Duration::from_secs(365 * 86_400);
        let q = |ms: f64, n: f64, state: State| {
            Outcome {
                elapsed_ms: ms,
                ..o("mx1", "queue", state)
            }
            .with_value(n)
        };
        h.record(t0, &[q(10.0, 3.0, State::Ok)], keep).unwrap();
        h.record(
            t0 + chrono::Duration::seconds(30),
            &[q(20.0, 7.0, State::Warning)],
            keep,
        )
        .unwrap();
        h.record(
            t0 + chrono::Duration::seconds(90),
            &[q(40.0, 1.0, State::Ok), o("mx1", "smtp", State::Ok)],
            keep,
        )
        .unwrap();
        let s = h
            .series("queue", t0, t0 + chrono::Duration::seconds(120), 2)
            .unwrap();
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(
            (s[0].server.as_str(), s[0].check.as_str()),
            ("mx1", "queue")
        );
        let p = &s[0].points;
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(
            (
                p[0].at,
                p[0].mean_ms,
                p[0].max_value,
                p[0].worst.as_str(),
                p[0].samples
            ),
            (t0, 15.0, Some(7.0), "WARNING", 2)
        );
        assert_eq!(
            (p[1].at, p[1].mean_ms, p[1].max_value, p[1].worst.as_str()),
            (t0 + chrono::Duration::seconds(60), 40.0, Some(1.0), "OK")
        );
        let smtp = h
            .series("smtp", t0, t0 + chrono::Duration::seconds(120), 2)
            .unwrap();
        assert_eq!(
            smtp[0].points[0].max_value, None,
            "smtp measures no quantity"
        );
    }

    #[test]
    fn record_retain_and_export_per_family() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::open(dir.path()).unwrap();
        let now = Utc::now();
        let old = now - chrono::Duration::days(40);
        h.record(
            old,
            &[o("store1", "imap", State::Ok)],
            Duration::from_secs(365 * 86_400),
        )
        .unwrap();
        h.record(
            now,
            &[
                o("store1", "imap", State::Critical),
                o("vm", "disk:/", State::Ok),
                o("vm", "disk:/var", State::Warning),
            ],
            Duration::from_secs(30 * 86_400),
        )
        .unwrap();
        let out = dir.path().join("csv");
        let files = h
            .export_csv(&out, now - chrono::Duration::days(365))
            .unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["disk.csv", "imap.csv"]);
        let imap = std::fs::read_to_string(out.join("imap.csv")).unwrap();
        assert_eq!(
            imap.lines().count(),
            2,
            "the 40-day-old sample is past retention: {imap}"
        );
        assert!(
            imap.contains(",store1,imap,CRITICAL,12.5,\"m, with comma\""),
            "{imap}"
        );
        assert_eq!(
            std::fs::read_to_string(out.join("disk.csv"))
                .unwrap()
                .lines()
                .count(),
            3
        );
    }
}

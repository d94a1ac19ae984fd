//! The history's spans kept pre-aggregated beside its samples (five minutes and an hour:
//! each server's check with its summed time, sample count, largest quantity and worst
//! state), written with every round, so a chart of a week or a month reads a few thousand
//! rows instead of every sample; and the charts' series read from them or, for short
//! ranges, from the samples themselves.

use chrono::{DateTime, Utc};
use mailfleet_core::series::{Point, Series};
use rusqlite::{Connection, Transaction, params};

use crate::outcome::Outcome;

/// The widths kept, in seconds, narrowest first.
const WIDTHS: [i64; 2] = [300, 3600];

/// A state as a number that orders from OK to CRITICAL.
const RANK: &str =
    "CASE state WHEN 'CRITICAL' THEN 3 WHEN 'UNKNOWN' THEN 2 WHEN 'WARNING' THEN 1 ELSE 0 END";

/// Makes the table; a store that had samples before it is rolled up once, here.
pub(crate) fn create(conn: &Connection) -> rusqlite::Result<()> {
    let existed = conn
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'rollup'")?
        .exists([])?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS rollup (
            width INTEGER NOT NULL, family TEXT NOT NULL, span INTEGER NOT NULL,
            server TEXT NOT NULL, check_name TEXT NOT NULL,
            sum_ms REAL NOT NULL, n INTEGER NOT NULL, max_value REAL, worst INTEGER NOT NULL,
            PRIMARY KEY (width, family, span, server, check_name)) WITHOUT ROWID;
         CREATE INDEX IF NOT EXISTS rollup_span ON rollup(span);",
    )?;
    if !existed {
        let started = std::time::Instant::now();
        for w in WIDTHS {
            conn.execute(
                &format!(
                    "INSERT INTO rollup SELECT ?1, family, (at / ?1) * ?1, server, check_name,
                            SUM(elapsed_ms), COUNT(*), MAX(value), MAX({RANK})
                     FROM samples GROUP BY family, at / ?1, server, check_name"
                ),
                params![w],
            )?;
        }
        let rows: i64 = conn.query_row("SELECT COUNT(*) FROM rollup", [], |r| r.get(0))?;
        if rows > 0 {
            tracing::info!(
                "history: {rows} spans rolled up from the samples in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

/// Adds one round's outcomes taken at `at` to their spans.
pub(crate) fn add(tx: &Transaction<'_>, at: i64, outcomes: &[Outcome]) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO rollup VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?8)
         ON CONFLICT (width, family, span, server, check_name) DO UPDATE SET
            sum_ms = sum_ms + excluded.sum_ms, n = n + 1,
            max_value = CASE WHEN max_value IS NULL OR excluded.max_value > max_value
                             THEN COALESCE(excluded.max_value, max_value) ELSE max_value END,
            worst = MAX(worst, excluded.worst)",
    )?;
    for o in outcomes {
        let rank = match o.state.to_string().as_str() {
            "CRITICAL" => 3,
            "UNKNOWN" => 2,
            "WARNING" => 1,
            _ => 0,
        };
        for w in WIDTHS {
            stmt.execute(params![
                w,
                crate::history::family(&o.check),
                (at / w) * w,
                o.server,
                o.check,
                o.elapsed_ms,
                o.value,
                rank
            ])?;
        }
    }
    Ok(())
}

/// Forgets spans that end before `cutoff`.
pub(crate) fn forget(tx: &Transaction<'_>, cutoff: i64) -> rusqlite::Result<()> {
    // `span < ?1` lets the index find the old rows; the rest keeps spans not yet over.
    tx.execute(
        "DELETE FROM rollup WHERE span < ?1 AND span + width <= ?1",
        params![cutoff],
    )?;
    Ok(())
}

/// The checks of `family` between `since` and `until`, each server's check one series of
/// about `buckets` equal spans (fewer when a rolled-up width is used: each bucket is then
/// a whole number of its spans); spans without samples are left out.
pub(crate) fn series(
    conn: &Connection,
    family: &str,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    buckets: u32,
) -> rusqlite::Result<Vec<Series>> {
    // Samples are stored by the second: `until` is rounded up to the next one, so a chart
    // asked for in the second a round was recorded shows that round.
    let to = until.timestamp() + i64::from(until.timestamp_subsec_nanos() > 0);
    let mut from = since.timestamp();
    let n = i64::from(buckets.max(1));
    let mut width = ((to - from).max(1) + n - 1) / n;
    let rolled = WIDTHS.iter().rev().find(|w| **w <= width).copied();
    let sql = match rolled {
        Some(r) => {
            width = (width + r - 1) / r * r;
            from -= from.rem_euclid(r);
            format!(
                "SELECT server, check_name, (span - ?2) / ?4 AS b, SUM(sum_ms) / SUM(n),
                        MAX(max_value), MAX(worst), SUM(n)
                 FROM rollup WHERE width = {r} AND family = ?1 AND span >= ?2 AND span < ?3
                 GROUP BY server, check_name, b ORDER BY server, check_name, b"
            )
        }
        None => format!(
            "SELECT server, check_name, (at - ?2) / ?4 AS b, AVG(elapsed_ms), MAX(value),
                    MAX({RANK}), COUNT(*)
             FROM samples WHERE family = ?1 AND at >= ?2 AND at < ?3
             GROUP BY server, check_name, b ORDER BY server, check_name, b"
        ),
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![family, from, to, width], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            Point {
                at: DateTime::from_timestamp(from + r.get::<_, i64>(2)? * width, 0)
                    .unwrap_or(since),
                mean_ms: r.get(3)?,
                max_value: r.get(4)?,
                worst: match r.get::<_, i64>(5)? {
                    3 => "CRITICAL",
                    2 => "UNKNOWN",
                    1 => "WARNING",
                    _ => "OK",
                }
                .to_string(),
                samples: r.get(6)?,
            },
        ))
    })?;
    let mut out: Vec<Series> = Vec::new();
    for row in rows {
        let (server, check, point) = row?;
        match out.last_mut() {
            Some(s) if s.server == server && s.check == check => s.points.push(point),
            _ => out.push(Series {
                server,
                check,
                points: vec![point],
            }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::history::History;
    use crate::outcome::{Outcome, State};

    use super::*;

    fn o(ms: f64, value: f64, state: State) -> Outcome {
        Outcome {
            server: "mx1".into(),
            check: "queue".into(),
            state,
            elapsed_ms: ms,
            steps: vec![],
            message: String::new(),
            value: None,
        }
        .with_value(value)
    }

    #[test]
    fn rolled_up_spans_agree_with_the_samples() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::open(dir.path()).unwrap();
        // A whole hour, as the spans are.
        let t0 = 1_800_000_000;
        assert_eq!(t0 % 3600, 0);
        let keep = Duration::from_secs(365 * 86_400);
        // Two hours of one-minute rounds: time n ms, queue n messages, CRITICAL once.
        for n in 0..120i64 {
            let state = if n == 70 { State::Critical } else { State::Ok };
            let at = DateTime::from_timestamp(t0 + n * 60, 0).unwrap();
            h.record(at, &[o(n as f64, n as f64, state)], keep).unwrap();
        }
        let (since, until) = (
            DateTime::from_timestamp(t0, 0).unwrap(),
            DateTime::from_timestamp(t0 + 7200, 0).unwrap(),
        );
        // 2 h in 4 spans of 30 min: read from the five-minute rollup.
        let s = h.series("queue", since, until, 4).unwrap();
        let p = &s[0].points;
        assert_eq!(p.len(), 4, "{p:?}");
        for (i, point) in p.iter().enumerate() {
            let first = i as f64 * 30.0;
            assert_eq!(point.at.timestamp(), t0 + i as i64 * 1800);
            assert_eq!(point.samples, 30);
            assert_eq!(point.mean_ms, first + 14.5, "span {i}");
            assert_eq!(point.max_value, Some(first + 29.0), "span {i}");
            assert_eq!(
                point.worst,
                if i == 2 { "CRITICAL" } else { "OK" },
                "span {i}"
            );
        }
        // The same from the samples (a range short enough to read them) agrees.
        let raw = h
            .series(
                "queue",
                since,
                DateTime::from_timestamp(t0 + 1800, 0).unwrap(),
                1,
            )
            .unwrap();
        assert_eq!(raw[0].points[0].mean_ms, 14.5);
        // Retention forgets the old spans too.
        let late = DateTime::from_timestamp(t0 + 7200 + 3600, 0).unwrap();
        h.record(late, &[o(1.0, 1.0, State::Ok)], Duration::from_secs(1800))
            .unwrap();
        assert!(h.series("queue", since, until, 4).unwrap().is_empty());
    }

    #[test]
    fn a_store_with_samples_only_is_rolled_up_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("history.db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE samples (at INTEGER NOT NULL, server TEXT NOT NULL, family TEXT NOT NULL,
                check_name TEXT NOT NULL, state TEXT NOT NULL, elapsed_ms REAL NOT NULL,
                message TEXT NOT NULL, value REAL);",
        )
        .unwrap();
        for n in 0..600i64 {
            conn.execute(
                "INSERT INTO samples VALUES (?1, 'store1', 'imap', 'imap', 'OK', ?2, '', NULL)",
                params![1_800_000_000 + n * 60, 10.0],
            )
            .unwrap();
        }
        drop(conn);
        let h = History::open(dir.path()).unwrap();
        let since = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let s = h
            .series("imap", since, since + chrono::Duration::hours(10), 10)
            .unwrap();
        let total: u64 = s[0].points.iter().map(|p| p.samples).sum();
        assert_eq!(total, 600);
        assert!(s[0].points.iter().all(|p| p.mean_ms == 10.0));
    }

    #[test]
    fn a_round_is_charted_in_its_own_second() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::open(dir.path()).unwrap();
        let keep = Duration::from_secs(86_400);
        let at = DateTime::from_timestamp(1_800_000_000, 200_000_000).unwrap();
        h.record(at, &[o(5000.0, 0.0, State::Critical)], keep)
            .unwrap();
        // Asked for 0.5 s later, in the same second (a browser test saw a CRITICAL round
        // missing from a chart read then).
        let until = at + chrono::Duration::milliseconds(500);
        let s = h
            .series("queue", until - chrono::Duration::hours(1), until, 120)
            .unwrap();
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].points[0].worst, "CRITICAL");
    }
}

//! `[backup] schedule`: when `mailfleet serve` backs the stores up by itself. Each entry is a
//! time of day in UTC (`"02:30"`: no daylight-saving gap or double hour) or an interval
//! (`"every 6h"`, counted from the daemon's start and then from each run's start).

use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use serde::Serialize;

use super::validate::Problems;

/// One entry of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupTime {
    /// Every day at this time, UTC.
    Daily(NaiveTime),
    /// This long after the previous start (or the daemon's start).
    Every(Duration),
}

/// The shortest interval taken: a backup run reads every changed message.
const SHORTEST: Duration = Duration::from_secs(1);

fn parse(entry: &str) -> Result<BackupTime, String> {
    let e = entry.trim();
    if let Some(span) = e.strip_prefix("every ") {
        let d = super::parse_duration(span.trim())?;
        if d < SHORTEST {
            return Err(format!("{span:?} is shorter than a second"));
        }
        return Ok(BackupTime::Every(d));
    }
    NaiveTime::parse_from_str(e, "%H:%M")
        .map(BackupTime::Daily)
        .map_err(|_| {
            format!(
                "{entry:?} is neither a time of day (\"02:30\", UTC) nor an interval (\"every 6h\")"
            )
        })
}

/// The schedule as written, checked entry by entry.
pub(crate) fn schedule(raw: &Option<Vec<String>>, p: &mut Problems) -> Vec<BackupTime> {
    let mut out = Vec::new();
    for (i, entry) in raw.iter().flatten().enumerate() {
        match parse(entry) {
            Ok(t) if out.contains(&t) => p.add(
                format!("backup.schedule[{i}]"),
                format!("{entry:?} is named twice"),
            ),
            Ok(t) => out.push(t),
            Err(e) => p.add(format!("backup.schedule[{i}]"), e),
        }
    }
    out
}

/// When the next scheduled backup is due after `now`, the previous having started at `last`
/// (or the daemon at `last` when none ran yet); `None` for an empty schedule.
pub fn next_due(
    schedule: &[BackupTime],
    now: DateTime<Utc>,
    last: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    schedule
        .iter()
        .filter_map(|t| match *t {
            BackupTime::Every(d) => {
                let due = last + chrono::Duration::from_std(d).ok()?;
                Some(due.max(now))
            }
            BackupTime::Daily(at) => {
                let today = now.date_naive().and_time(at).and_utc();
                Some(if today > now {
                    today
                } else {
                    today + chrono::Duration::days(1)
                })
            }
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn entries_parse_or_say_what_is_wrong() {
        let mut p = Problems::default();
        let s = schedule(
            &Some(vec![
                "02:30".into(),
                "every 6h".into(),
                "25:00".into(),
                "every soon".into(),
                "02:30".into(),
            ]),
            &mut p,
        );
        assert_eq!(
            s,
            [
                BackupTime::Daily(NaiveTime::from_hms_opt(2, 30, 0).unwrap()),
                BackupTime::Every(Duration::from_secs(6 * 3600))
            ]
        );
        let text = p.text();
        for want in [
            "backup.schedule[2]",
            "backup.schedule[3]",
            "backup.schedule[4]: \"02:30\" is named twice",
        ] {
            assert!(text.contains(want), "{want}: {text}");
        }
    }

    #[test]
    fn the_next_run_is_the_soonest_entry() {
        let daily = [BackupTime::Daily(
            NaiveTime::from_hms_opt(2, 30, 0).unwrap(),
        )];
        let start = at("2026-12-03T01:00:00Z");
        assert_eq!(
            next_due(&daily, start, start),
            Some(at("2026-12-03T02:30:00Z"))
        );
        // At 02:30 exactly that run is taken: the next is tomorrow's.
        let t = at("2026-12-03T02:30:00Z");
        assert_eq!(next_due(&daily, t, t), Some(at("2026-12-04T02:30:00Z")));
        let both = [daily[0], BackupTime::Every(Duration::from_secs(3600))];
        assert_eq!(
            next_due(&both, start, start),
            Some(at("2026-12-03T02:00:00Z"))
        );
        // An interval overdue (the daemon was busy) is due now, not in the past.
        let late = at("2026-12-03T05:00:00Z");
        assert_eq!(next_due(&both[1..], late, start), Some(late));
        assert_eq!(next_due(&[], start, start), None);
    }
}

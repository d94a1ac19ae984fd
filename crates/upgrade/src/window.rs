//! Maintenance windows: whether an instant lies in one, and when the next one opens, in the
//! windows' time zone (daylight saving time included: a window opening in a skipped hour
//! opens at the first instant after it).

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use mailfleet_core::config::Window;

fn open_on(w: &Window, day: NaiveDate) -> bool {
    w.days.contains(&day.weekday())
}

/// Whether `at` lies in window `w`.
pub fn inside(w: &Window, tz: Tz, at: DateTime<Utc>) -> bool {
    let local = at.with_timezone(&tz).naive_local();
    let (day, time) = (local.date(), local.time());
    if w.from < w.to {
        open_on(w, day) && w.from <= time && time < w.to
    } else {
        // Past midnight: opened today, or yesterday and not closed yet.
        (open_on(w, day) && time >= w.from)
            || (day.pred_opt().is_some_and(|y| open_on(w, y)) && time < w.to)
    }
}

/// The instant of local `day` at `time`; in a skipped hour, the first instant after it.
fn at_local(tz: Tz, day: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    let naive = day.and_time(time);
    // A skipped stretch is at most a few hours long anywhere.
    (0..=240).find_map(|m| {
        tz.from_local_datetime(&(naive + Duration::minutes(m)))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    })
}

/// `at` if it lies in a window (or there are none); else when the next one opens.
pub fn next_open(windows: &[Window], tz: Tz, at: DateTime<Utc>) -> DateTime<Utc> {
    if windows.is_empty() || windows.iter().any(|w| inside(w, tz, at)) {
        return at;
    }
    let today = at.with_timezone(&tz).date_naive();
    let mut best: Option<DateTime<Utc>> = None;
    for w in windows {
        for offset in 0..=8 {
            let Some(day) = today.checked_add_days(chrono::Days::new(offset)) else {
                continue;
            };
            if !open_on(w, day) {
                continue;
            }
            if let Some(t) = at_local(tz, day, w.from).filter(|t| *t > at) {
                best = Some(best.map_or(t, |b| b.min(t)));
                break;
            }
        }
    }
    // Every window opens on at least one day a week (checked when the config is loaded).
    best.unwrap_or(at)
}

/// "sat,sun 01:00-05:00" for messages.
pub fn describe(w: &Window) -> String {
    let days: Vec<String> = w
        .days
        .iter()
        .map(|d| d.to_string().to_ascii_lowercase())
        .collect();
    format!(
        "{} {}-{}",
        days.join(","),
        w.from.format("%H:%M"),
        w.to.format("%H:%M")
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::Weekday;

    fn w(days: &[Weekday], from: &str, to: &str) -> Window {
        Window {
            days: days.to_vec(),
            from: NaiveTime::parse_from_str(from, "%H:%M").unwrap(),
            to: NaiveTime::parse_from_str(to, "%H:%M").unwrap(),
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_next_window_opens_in_its_own_time_zone() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let sat = [w(&[Weekday::Sat], "01:00", "05:00")];
        // Wednesday 2026-12-02 12:00 UTC: the next Saturday 01:00 in Berlin (UTC+1).
        let t = next_open(&sat, berlin, utc("2026-12-02T12:00:00Z"));
        assert_eq!(t, utc("2026-12-05T00:00:00Z"));
        // Inside: now.
        let t = next_open(&sat, berlin, utc("2026-12-05T02:00:00Z"));
        assert_eq!(t, utc("2026-12-05T02:00:00Z"));
        // Closed at 05:00 local (04:00 UTC): a week later.
        let t = next_open(&sat, berlin, utc("2026-12-05T04:00:00Z"));
        assert_eq!(t, utc("2026-12-12T00:00:00Z"));
        // Summer time: UTC+2.
        let t = next_open(&sat, berlin, utc("2026-07-01T00:00:00Z"));
        assert_eq!(t, utc("2026-07-03T23:00:00Z"));
    }

    #[test]
    fn a_window_past_midnight_belongs_to_the_day_it_opens() {
        let tz = chrono_tz::UTC;
        let fri_night = w(&[Weekday::Fri], "23:00", "02:00");
        // Saturday 01:00 is still Friday's window; Saturday 23:30 is not.
        assert!(inside(&fri_night, tz, utc("2026-12-05T01:00:00Z")));
        assert!(!inside(&fri_night, tz, utc("2026-12-05T23:30:00Z")));
        assert!(!inside(&fri_night, tz, utc("2026-12-04T22:59:00Z")));
        assert_eq!(
            next_open(&[fri_night], tz, utc("2026-12-05T02:00:00Z")),
            utc("2026-12-11T23:00:00Z")
        );
    }

    #[test]
    fn a_window_opening_in_a_skipped_hour_opens_after_it() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 2026-03-29: clocks go from 02:00 to 03:00.
        let sun = [w(&[Weekday::Sun], "02:30", "04:00")];
        let t = next_open(&sun, berlin, utc("2026-03-28T12:00:00Z"));
        assert_eq!(t, utc("2026-03-29T01:00:00Z"));
        assert!(inside(&sun[0], berlin, t));
    }

    #[test]
    fn the_earliest_of_several_windows() {
        let tz = chrono_tz::UTC;
        let ws = [
            w(&[Weekday::Sat], "01:00", "05:00"),
            w(&[Weekday::Thu], "22:00", "23:00"),
        ];
        assert_eq!(
            next_open(&ws, tz, utc("2026-12-02T12:00:00Z")),
            utc("2026-12-03T22:00:00Z")
        );
        assert_eq!(describe(&ws[0]), "sat 01:00-05:00");
    }
}

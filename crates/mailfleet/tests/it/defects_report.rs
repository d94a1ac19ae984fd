//! Regression tests for the report defects found by trying it as a new admin would; each is
//! named after the defect it pins.

use chrono::{Datelike, Duration, NaiveDate};

/// The year a classic syslog stamp (no year) of `day` belongs to when read today: the
/// latest that does not put it after today.
fn expected_year(day: NaiveDate, today: NaiveDate) -> i32 {
    let this = NaiveDate::from_ymd_opt(today.year(), day.month(), day.day());
    match this {
        Some(d) if d <= today => today.year(),
        _ => today.year() - 1,
    }
}

/// A Postfix log of received messages on each of these days (classic stamps, no year).
fn log_of(days: &[NaiveDate]) -> String {
    let mut out = String::new();
    for (i, d) in days.iter().enumerate() {
        out.push_str(&format!(
            "{} 10:00:{:02} mx1 postfix/smtpd[100]: 4F2A31C{i:02X}: client=client.example[192.0.2.1]\n",
            d.format("%b %e"),
            i % 60
        ));
    }
    out
}

fn per_day_years(log: &str) -> Vec<i32> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mail.log");
    std::fs::write(&path, log).unwrap();
    let out = crate::common::mailfleet(&["--json", "report", path.to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let mx1 = report["machines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["host"] == "mx1")
        .unwrap_or_else(|| panic!("{report:#}"));
    mx1["per_day"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k[..4].parse().unwrap())
        .collect()
}

#[test]
fn a_log_read_before_its_dates_is_dated_in_the_future() {
    let today = chrono::Local::now().date_naive();
    // Two weeks ahead of today's day of the year: last year's lines (as 15-16 December read
    // on 1 December).
    let ahead = [today + Duration::days(14), today + Duration::days(15)];
    let want: Vec<i32> = ahead.iter().map(|d| expected_year(*d, today)).collect();
    assert_eq!(per_day_years(&log_of(&ahead)), want, "today is {today}");
    // A log around today's day of the year, ending ahead of it: all of it is last year's
    // (its last line may not be after today).
    let around = [today - Duration::days(5), today + Duration::days(10)];
    let end = expected_year(around[1], today);
    let want: Vec<i32> = around
        .iter()
        .map(|d| {
            if d.year() == around[1].year() {
                end
            } else {
                end - 1
            }
        })
        .collect();
    assert_eq!(per_day_years(&log_of(&around)), want, "today is {today}");
}

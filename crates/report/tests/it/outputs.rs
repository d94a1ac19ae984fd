//! JSON shape, CSV files and the self-contained HTML page.

use std::path::Path;

use mailfleet_report::{Options, output, run};

fn real() -> mailfleet_report::Report {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/infohtreasure-maillog");
    run(
        &[p],
        &Options {
            year: Some(2022),
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn json_has_the_documented_shape() {
    let v = serde_json::to_value(real()).unwrap();
    for key in [
        "totals",
        "machines",
        "users",
        "funnel",
        "anomalies",
        "unparsed",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    for key in [
        "received",
        "delivered",
        "forwarded",
        "deferred",
        "bounced",
        "rejected",
        "held",
        "discarded",
        "bytes_received",
        "bytes_delivered",
        "senders",
        "recipients",
        "sending_domains",
        "recipient_domains",
    ] {
        assert!(v["totals"][key].is_u64(), "totals.{key} is not an integer");
    }
}

#[test]
fn csv_files_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let files = output::csv::write_dir(&real(), dir.path()).unwrap();
    assert_eq!(files.len(), 9);
    let totals = std::fs::read_to_string(dir.path().join("totals.csv")).unwrap();
    assert!(
        totals.starts_with("name,value\n") && totals.contains("delivered,12"),
        "{totals}"
    );
    let machines = std::fs::read_to_string(dir.path().join("machines.csv")).unwrap();
    assert!(
        machines
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("server1,")),
        "{machines}"
    );
}

#[test]
fn html_is_one_offline_page_with_charts() {
    let html = output::html::render(&real());
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        html.matches("<svg").count() >= 4,
        "hourly, daily, sizes, funnel"
    );
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"));
}

/// A month of mail: a day's traffic in the thousands, so labels and numbers are long.
fn month_of_mail() -> mailfleet_report::Report {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mail.log");
    let mut log = String::new();
    let start = chrono::NaiveDate::from_ymd_opt(2026, 10, 20).unwrap();
    let mut n = 0u64;
    for d in 0..30 {
        let day = start + chrono::Duration::days(d);
        for i in 0..(1000 + (d * 37) % 900) {
            n += 1;
            let stamp = format!("{} {:02}:{:02}:00", day.format("%b %e"), i % 24, i % 60);
            log.push_str(&format!(
                "{stamp} mx1 postfix/smtpd[1]: {n:010X}: client=c.example[192.0.2.1]\n\
                 {stamp} mx1 postfix/qmgr[2]: {n:010X}: from=<a{}@example.com>, size={}, nrcpt=1 (queue active)\n",
                i % 50,
                (i * 997) % 200_000 + 300
            ));
        }
    }
    std::fs::write(&path, log).unwrap();
    run(
        &[path],
        &Options {
            year: Some(2026),
            ..Default::default()
        },
    )
    .unwrap()
}

/// The `<svg>` element whose label is `title`, and its height.
fn chart<'a>(page: &'a str, title: &str) -> (&'a str, f64) {
    let at = page
        .find(&format!("aria-label=\"{title}\""))
        .unwrap_or_else(|| panic!("no chart {title}"));
    let start = page[..at].rfind("<svg").unwrap();
    let end = at + page[at..].find("</svg>").unwrap();
    let svg = &page[start..end];
    let height = svg
        .split("height=\"")
        .nth(1)
        .and_then(|h| h.split('"').next())
        .and_then(|h| h.parse().ok())
        .unwrap();
    (svg, height)
}

#[test]
fn charts_cut_their_date_labels_and_show_no_scale() {
    let page = output::html::render(&month_of_mail());
    let (svg, height) = chart(&page, "Messages received per day");
    // Labels upright, whole and inside the picture.
    assert!(
        !svg.contains("rotate("),
        "labels are turned and run out of the chart"
    );
    let labels: Vec<&str> = svg
        .split("class=\"label\"")
        .skip(1)
        .map(|t| t.split('>').nth(1).unwrap().split('<').next().unwrap())
        .collect();
    assert!(labels.len() >= 5, "{labels:?}");
    for l in &labels {
        assert_eq!(l.len(), "2026-10-20".len(), "a cut label: {l:?}");
    }
    for y in svg.split("class=\"label\"").skip(1).filter_map(|t| {
        t.split("y=\"")
            .nth(1)?
            .split('"')
            .next()?
            .parse::<f64>()
            .ok()
    }) {
        assert!(
            y <= height - 2.0,
            "a label below the picture ({y} of {height})"
        );
    }
    // A scale: several gridlines, each with its value, big ones with separators.
    let ticks: Vec<&str> = svg
        .split("class=\"tick\"")
        .skip(1)
        .map(|t| t.split('>').nth(1).unwrap().split('<').next().unwrap())
        .collect();
    assert!(ticks.len() >= 3, "gridlines with values: {ticks:?}");
    assert!(ticks.iter().any(|t| t.contains(',')), "{ticks:?}");
    assert!(svg.matches("class=\"grid\"").count() >= 3);
    // Numbers a person reads: the totals with thousands separators.
    assert!(
        page.contains(">41,595<"),
        "received total without separators"
    );
}

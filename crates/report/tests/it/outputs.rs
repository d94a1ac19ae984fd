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

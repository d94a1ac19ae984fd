//! Bad input is counted and reported, never fatal: binary junk, half lines, unknown
//! services, a file cut mid-line, out-of-order timestamps, a truncated .gz.

use std::io::Write;
use std::path::PathBuf;

use mailfleet_report::{Options, run};

const GOOD: &str = "\
Feb  3 10:00:00 mx1 postfix/smtpd[1]: connect from a.example.net[192.0.2.1]
Feb  3 10:00:01 mx1 postfix/smtpd[1]: 1A2B3C: client=a.example.net[192.0.2.1], sasl_method=PLAIN, sasl_username=alice@example.com
Feb  3 10:00:01 mx1 postfix/cleanup[2]: 1A2B3C: message-id=<m1@example.com>
Feb  3 10:00:01 mx1 postfix/qmgr[3]: 1A2B3C: from=<alice@example.com>, size=1200, nrcpt=2 (queue active)
Feb  3 10:00:02 mx1 postfix/lmtp[4]: 1A2B3C: to=<bob@example.com>, relay=store1[127.0.0.1]:24, delay=1, delays=0.1/0/0/0.9, dsn=2.0.0, status=sent (250 2.0.0 Saved)
Feb  3 10:00:02 mx1 postfix/smtp[5]: 1A2B3C: to=<carol@remote.org>, relay=mx.remote.org[198.51.100.7]:25, delay=1, delays=0.1/0/0.5/0.4, dsn=2.0.0, status=sent (250 ok)
Feb  3 10:00:02 mx1 postfix/qmgr[3]: 1A2B3C: removed
";

fn write(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    (dir, p)
}

fn report(p: &PathBuf) -> mailfleet_report::Report {
    run(
        std::slice::from_ref(p),
        &Options {
            year: Some(2024),
            ..Default::default()
        },
    )
    .expect("report")
}

#[test]
fn clean_log_is_fully_understood() {
    let (_d, p) = write("mail.log", GOOD.as_bytes());
    let r = report(&p);
    assert_eq!(r.unparsed.total, 0, "{:?}", r.unparsed.by_kind);
    assert_eq!(
        (
            r.totals.received,
            r.totals.delivered,
            r.totals.bytes_delivered
        ),
        (1, 2, 2400)
    );
    let alice = r
        .users
        .iter()
        .find(|u| u.account == "alice@example.com")
        .expect("alice");
    assert_eq!(
        (
            alice.sent,
            alice.sent_internal,
            alice.sent_external,
            alice.distinct_recipients
        ),
        (1, 1, 1, 2)
    );
    let bob = r
        .users
        .iter()
        .find(|u| u.account == "bob@example.com")
        .expect("bob");
    assert_eq!((bob.received, bob.bytes_received), (1, 1200));
}

#[test]
fn binary_junk_half_lines_and_unknown_programs_are_counted() {
    let mut bytes = GOOD.as_bytes().to_vec();
    bytes.extend_from_slice(b"\x00\xff\xfe\x01garbage\x7f\n");
    bytes.extend_from_slice(b"Feb  3 10:00:03 mx1 postfix/smtpd[1]: disconn\n");
    bytes.extend_from_slice(b"Feb  3 10:00:03 mx1 postfix/frobnicator[9]: something\n");
    bytes.extend_from_slice(b"Feb  3 10:00:03 mx1 named[9]: client query\n");
    bytes.extend_from_slice(
        b"Feb  3 10:00:03 mx1 postfix/qmgr[3]: 9F9F9F: from=<x@y.z>, size=notanumber, nrcpt=1\n",
    );
    bytes.extend_from_slice(&[0xc3; 5000]);
    bytes.extend_from_slice(b"\nFeb 30 10:00:00 mx1 postfix/qmgr[3]: ABC: removed\n");
    let (_d, p) = write("junk.log", &bytes);
    let r = report(&p);
    assert_eq!(r.totals.received, 1);
    assert_eq!(
        r.unparsed.by_kind.get("not a syslog line"),
        Some(&2),
        "{:?}",
        r.unparsed.by_kind
    );
    assert_eq!(r.unparsed.by_kind.get("program named"), Some(&1));
    assert_eq!(
        r.unparsed.by_kind.get("postfix/smtpd: other"),
        Some(&1),
        "{:?}",
        r.unparsed.by_kind
    );
    assert_eq!(
        r.unparsed.by_kind.get("impossible date"),
        Some(&1),
        "{:?}",
        r.unparsed.by_kind
    );
    assert!(
        r.unparsed
            .by_kind
            .contains_key("program postfix/frobnicator"),
        "{:?}",
        r.unparsed.by_kind
    );
}

#[test]
fn file_cut_mid_line() {
    let cut = &GOOD[..GOOD.len() - 20];
    let (_d, p) = write("cut.log", cut.as_bytes());
    let r = report(&p);
    assert_eq!(r.totals.delivered, 2);
    assert_eq!(
        r.unparsed.total, 1,
        "the cut line is counted: {:?}",
        r.unparsed.by_kind
    );
    assert!(r.input.errors.is_empty());
}

#[test]
fn out_of_order_timestamps_and_year_rollover() {
    let text = "\
Dec 31 23:59:58 mx1 postfix/pickup[1]: AAA1: uid=0 from=<root>
Jan  1 00:00:01 mx1 postfix/pickup[1]: AAA2: uid=0 from=<root>
Dec 31 23:59:59 mx1 postfix/pickup[1]: AAA3: uid=0 from=<root>
Jan  1 00:00:02 mx1 postfix/pickup[1]: AAA4: uid=0 from=<root>
";
    let (_d, p) = write("roll.log", text.as_bytes());
    let r = report(&p);
    let m = &r.machines[0];
    assert_eq!(
        m.per_day.get("2024-12-31").map(|d| d.received),
        Some(2),
        "{:?}",
        m.per_day
    );
    assert_eq!(
        m.per_day.get("2025-01-01").map(|d| d.received),
        Some(2),
        "{:?}",
        m.per_day
    );
}

#[test]
fn truncated_gzip_reports_an_error_and_keeps_what_was_read() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for _ in 0..2000 {
        gz.write_all(GOOD.as_bytes()).unwrap();
    }
    let bytes = gz.finish().unwrap();
    let (_d, p) = write("mail.log.1.gz", &bytes[..bytes.len() / 2]);
    let r = report(&p);
    assert_eq!(r.input.errors.len(), 1, "{:?}", r.input.errors);
    assert!(
        r.input.errors[0].contains("mail.log.1.gz"),
        "{}",
        r.input.errors[0]
    );
    assert!(
        r.totals.received > 0,
        "what was read before the cut is counted"
    );
    let (_d2, whole) = write("mail.log.2.gz", &bytes);
    assert_eq!(report(&whole).totals.received, 2000);
}

/// A plain file is read through a memory map, a `.gz` through buffers: same report.
#[test]
fn mapped_and_streamed_reads_agree() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut text = std::fs::read(dir.join("infohtreasure-maillog")).unwrap();
    // Several chunks' worth, so chunk boundaries fall in different places on both paths.
    let one = text.clone();
    while text.len() < 3 * mailfleet_report::input::CHUNK {
        text.extend_from_slice(&one);
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&text).unwrap();
    let (_d, plain) = write("maillog", &text);
    let (_d2, packed) = write("maillog.gz", &gz.finish().unwrap());
    let json = |p: &PathBuf| {
        let mut v = serde_json::to_value(report(p)).unwrap();
        v["input"]["files"] = serde_json::Value::Null;
        v
    };
    let a = json(&plain);
    assert!(a["totals"]["received"].as_u64().unwrap() > 0);
    assert_eq!(a, json(&packed));
}

#[test]
fn missing_file_is_an_error() {
    let err = run(
        &[PathBuf::from("/nonexistent/mail.log")],
        &Options::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/mail.log"), "{err}");
}

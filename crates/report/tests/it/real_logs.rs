//! Totals on real Postfix logs nobody here wrote agree with pflogsumm's, field by field;
//! the one difference is explained and checked.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use mailfleet_report::{Options, run};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Bytes of received messages counted per message lifecycle (mailfleet: a queue ID seen
/// again after qmgr removed it is a new message) and per distinct queue ID (pflogsumm keeps
/// every size it saw for the whole run).
fn received_bytes_both_ways(path: &Path) -> (u64, u64) {
    let text = String::from_utf8_lossy(&std::fs::read(path).expect("read")).into_owned();
    let (mut per_life, mut per_qid) = (0, 0);
    let (mut received_life, mut sized_life) = (HashSet::new(), HashSet::new());
    let (mut received_qid, mut sized_ever) = (HashSet::new(), HashSet::new());
    for line in text.lines() {
        let Some(i) = line.find("]: ") else { continue };
        let Some((qid, rest)) = line[i + 3..].split_once(": ") else {
            continue;
        };
        let qid = qid.to_string();
        let received = (line.contains("postfix/smtpd[") && rest.starts_with("client="))
            || (line.contains("postfix/pickup[")
                && (rest.starts_with("uid=") || rest.starts_with("sender=")));
        if received {
            received_life.insert(qid.clone());
            received_qid.insert(qid);
        } else if line.contains("postfix/qmgr[")
            && rest.starts_with("from=<")
            && rest.contains(", size=")
        {
            let size: u64 = rest
                .split(", size=")
                .nth(1)
                .and_then(|s| s.split(',').next())
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if sized_life.insert(qid.clone()) && received_life.remove(&qid) {
                per_life += size;
            }
            if sized_ever.insert(qid.clone()) && received_qid.remove(&qid) {
                per_qid += size;
            }
        } else if line.contains("postfix/qmgr[") && rest == "removed" {
            sized_life.remove(&qid);
        }
    }
    (per_life, per_qid)
}

fn compare(name: &str, year: i32) {
    let path = data(name);
    let report = run(
        std::slice::from_ref(&path),
        &Options {
            year: Some(year),
            ..Default::default()
        },
    )
    .expect("report");
    let ours = crate::common::ours(&report.totals);
    let theirs = crate::common::pflogsumm(&[&path]);
    let (per_life, per_qid) = received_bytes_both_ways(&path);
    for (field, shown) in &theirs {
        if *field == "bytes_received" {
            // The log repeats whole message lifecycles under one queue ID (received, queued,
            // delivered, removed, then again): mailfleet counts each, pflogsumm the first.
            assert_eq!(
                ours[*field], per_life,
                "{name}: bytes_received per lifecycle"
            );
            assert!(
                shown.matches(per_qid),
                "{name}: pflogsumm's bytes_received per queue ID"
            );
            continue;
        }
        assert!(
            shown.matches(ours[*field]),
            "{name}: {field}: mailfleet {} vs pflogsumm {shown:?}",
            ours[*field]
        );
    }
    assert!(theirs.len() >= 15, "read all pflogsumm totals: {theirs:?}");
}

#[test]
fn totals_match_pflogsumm_on_real_log_1() {
    compare("infohtreasure-maillog", 2022);
}

#[test]
fn totals_match_pflogsumm_on_real_log_2() {
    compare("infohtreasure-mailog2", 2022);
}

#[test]
fn both_real_logs_as_one_rotated_set() {
    let a = data("infohtreasure-maillog");
    let b = data("infohtreasure-mailog2");
    let one = run(
        std::slice::from_ref(&a),
        &Options {
            year: Some(2022),
            ..Default::default()
        },
    )
    .expect("report");
    let two = run(
        std::slice::from_ref(&b),
        &Options {
            year: Some(2022),
            ..Default::default()
        },
    )
    .expect("report");
    let both = run(
        &[a, b],
        &Options {
            year: Some(2022),
            threads: Some(3),
            ..Default::default()
        },
    )
    .expect("report");
    assert_eq!(
        both.totals.received,
        one.totals.received + two.totals.received
    );
    assert_eq!(both.input.lines, one.input.lines + two.input.lines);
    assert!(
        both.unparsed.by_kind.contains_key("program sendmail"),
        "{:?}",
        both.unparsed.by_kind
    );
}

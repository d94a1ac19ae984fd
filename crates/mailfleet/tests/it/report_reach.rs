//! `report --server`: each server's `mail_log` read through its access (the demo's sshd per
//! server) gives the same report as the same files copied here; a log that is missing on one
//! server is an error naming it while the others are still read.

use std::path::PathBuf;
use std::time::Duration;

use mailfleet_stack::TestStack;
use serde_json::Value;

use crate::common::{mailfleet, send_via, unique_tag, wait_for_mail};

const SERVERS: [&str; 4] = ["mx1", "mx2", "store1", "store2"];

fn report(args: &[&str]) -> (Value, String, Option<i32>) {
    let out = mailfleet(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    (v, stderr, out.status.code())
}

/// The report without its input summary (which names where the lines came from).
fn body(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("input");
    v
}

#[tokio::test]
async fn report_over_ssh_equals_report_on_local_copies() {
    let stack = TestStack::start().await.expect("stack");
    let config = stack.config().unwrap();
    let path = stack.config_path();
    let tag = unique_tag("report-reach");
    // Mail through both MTAs to both stores, so all four logs have deliveries and logins.
    for (i, mta) in ["mx1", "mx2"].into_iter().enumerate() {
        let mx = config.fleet.server(mta).unwrap();
        for (to, store) in [("alice@example.com", 0), ("carol@example.org", 1)] {
            let subject = format!("{tag} {i} {to}");
            send_via(
                &mx.host,
                mx.ports.smtp.unwrap(),
                "bob@example.com",
                to,
                &subject,
            )
            .await;
            let got = wait_for_mail(
                stack.info.ports.stores[store].imap,
                to,
                &subject,
                Duration::from_secs(30),
            )
            .await;
            assert_eq!(got.len(), 1, "{subject} did not arrive");
        }
    }
    let logs: Vec<PathBuf> = SERVERS
        .iter()
        .map(|s| config.fleet.server(s).unwrap().mail_log[0].clone())
        .collect();
    let copies = tempfile::tempdir().unwrap();
    let c = path.to_str().unwrap();
    let mut args = vec!["--config", c, "--json", "report", "--year", "2026"];
    for s in SERVERS {
        args.extend(["--server", s]);
    }
    // The daemons may still log (a disconnect, qmgr's last word): compare only when the files
    // did not change around the remote report.
    let mut attempt = 0;
    let (remote, local) = loop {
        let before: Vec<Vec<u8>> = logs.iter().map(|l| std::fs::read(l).unwrap()).collect();
        let (remote, stderr, code) = report(&args);
        let after: Vec<Vec<u8>> = logs.iter().map(|l| std::fs::read(l).unwrap()).collect();
        assert_eq!(code, Some(0), "{stderr}");
        if before != after {
            attempt += 1;
            assert!(attempt < 10, "the logs never stopped changing");
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let mut files = Vec::new();
        for (s, bytes) in SERVERS.iter().zip(&after) {
            let f = copies.path().join(format!("{s}.log"));
            std::fs::write(&f, bytes).unwrap();
            files.push(f.display().to_string());
        }
        let mut local_args = vec!["--json", "report", "--year", "2026", "--keep-order"];
        local_args.extend(files.iter().map(String::as_str));
        let (local, stderr, code) = report(&local_args);
        assert_eq!(code, Some(0), "{stderr}");
        break (remote, local);
    };
    // Really read through each server's access, under its name, whole.
    let names: Vec<String> = remote["input"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = SERVERS
        .iter()
        .zip(&logs)
        .map(|(s, l)| format!("{s}:{}", l.display()))
        .collect();
    assert_eq!(names, expected);
    assert_eq!(remote["input"]["lines"], local["input"]["lines"]);
    assert_eq!(remote["input"]["bytes"], local["input"]["bytes"]);
    assert!(
        remote["totals"]["delivered"].as_u64().unwrap() >= 4,
        "{remote:#}"
    );
    assert_eq!(body(remote), body(local));

    // store2's log is not where its config says: an error naming it; the others still count.
    let text = std::fs::read_to_string(&path).unwrap();
    let store2_log = logs[3].display().to_string();
    let broken = text.replace(
        &format!("mail_log = {store2_log:?}"),
        "mail_log = \"/nonexistent/store2.log\"",
    );
    assert_ne!(broken, text);
    let broken_path = stack.base().join("report-missing.toml");
    std::fs::write(&broken_path, broken).unwrap();
    let b = broken_path.to_str().unwrap();
    let (partial, stderr, code) = report(&[
        "--config", b, "--json", "report", "--year", "2026", "--role", "mta", "--server", "store2",
    ]);
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("store2:/nonexistent/store2.log"),
        "{stderr}"
    );
    assert!(partial["totals"]["delivered"].as_u64().unwrap() >= 4);
    assert_eq!(partial["input"]["files"].as_array().unwrap().len(), 2);
}

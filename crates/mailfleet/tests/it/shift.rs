//! `mailfleet check shift` on the demo stack: all clear, then exactly what changed since the
//! last run: a restart, a stopped store, a new fatal line in the log.

use std::io::Write;
use std::path::Path;

use mailfleet_stack::{Layout, dovecot};
use serde_json::Value;

fn shift(config: &Path) -> (i32, Vec<String>) {
    let out = crate::common::mailfleet(&[
        "--config",
        config.to_str().unwrap(),
        "--json",
        "check",
        "shift",
    ]);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let findings = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} {}",
                f["state"].as_str().unwrap(),
                f["what"].as_str().unwrap()
            )
        })
        // Findings about machines' resources depend on this machine's load, as does a check
        // only slower than its warning time or one that timed out on a loaded machine (seen:
        // a POP3S login past 5 s while the whole suite ran): left out. A stopped daemon
        // refuses at once, so what the test looks for is never a timeout.
        .filter(|f| {
            let check = f.split(' ').nth(2).unwrap_or("").trim_end_matches(':');
            !crate::common::resource_check(check)
                && !f.contains("; slower than ")
                && !f.contains("no answer within")
        })
        .collect();
    (out.status.code().unwrap_or(-1), findings)
}

#[tokio::test]
async fn shift_check_reports_what_changed_since_the_last_one() {
    let stack = crate::common::backed_up_stack().await;
    let config = stack.config_path();
    let (_, findings) = shift(&config);
    assert!(findings.is_empty(), "{findings:?}");
    let (_, findings) = shift(&config);
    assert!(findings.is_empty(), "nothing new: {findings:?}");

    let layout = Layout::new(&stack.base());
    let ports = stack.info.ports.clone();
    dovecot::stop(&layout, "store1").unwrap();
    dovecot::start(
        &layout,
        "store1",
        crate::common::host_of(ports.stores[0].imap),
        &ports.stores[0],
    )
    .unwrap();
    dovecot::stop(&layout, "store2").unwrap();
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(stack.base().join("log/postfix.log"))
        .unwrap();
    writeln!(
        log,
        "Nov 23 11:00:00 mx1 postfix/smtpd[999]: fatal: no space left on device"
    )
    .unwrap();
    drop(log);

    let (code, findings) = shift(&config);
    assert_eq!(code, 2, "{findings:?}");
    let has = |needle: &str| findings.iter().any(|f| f.contains(needle));
    assert!(
        has("store1: restarted since the last shift check"),
        "{findings:?}"
    );
    assert!(
        has("CRITICAL store2: its daemon is not running"),
        "{findings:?}"
    );
    assert!(has("CRITICAL store2 imap: CRITICAL"), "{findings:?}");
    assert!(
        has("postfix.log: new Postfix fatal lines (smtpd 1)"),
        "{findings:?}"
    );

    // The log line and the restart are reported once; the stopped store until it is back.
    let (_, findings) = shift(&config);
    assert!(
        !findings
            .iter()
            .any(|f| f.contains("fatal") || f.contains("restarted")),
        "{findings:?}"
    );
    assert!(
        findings
            .iter()
            .any(|f| f.contains("store2: its daemon is not running")),
        "{findings:?}"
    );
}

//! `mailfleet probe` against the demo stack: all OK with timings; a stopped, a frozen and a
//! half-broken store are CRITICAL; the end-to-end check leaves no probe mail behind.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mailfleet_stack::TestStack;
use serde_json::Value;

/// Runs `mailfleet probe --json` with this config; returns the exit code and the outcomes.
/// The protocol checks of `servers`: the machines' resources depend on how busy this machine
/// is, not on the mail service. `local` alone asks for this machine's resources.
fn probe(config: &Path, servers: &[&str]) -> (i32, Vec<Value>) {
    let mut args = vec!["--config", config.to_str().unwrap(), "probe", "--json"];
    if servers != ["local"] {
        args.push("--no-resources");
    }
    args.extend_from_slice(servers);
    let out = crate::common::mailfleet(&args);
    let outcomes: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), outcomes)
}

fn find<'a>(outcomes: &'a [Value], server: &str, check: &str) -> &'a Value {
    outcomes
        .iter()
        .find(|o| o["server"] == server && o["check"] == check)
        .unwrap_or_else(|| panic!("no {server} {check} in {outcomes:#?}"))
}

fn steps(o: &Value) -> Vec<String> {
    o["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

/// The PIDs of a Dovecot instance: its master and every descendant.
fn dovecot_pids(base: &Path, store: &str) -> Vec<String> {
    let master = std::fs::read_to_string(base.join(store).join("run/master.pid"))
        .unwrap()
        .trim()
        .to_string();
    let mut pids = vec![master];
    loop {
        let before = pids.len();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let pid = entry.file_name().to_string_lossy().to_string();
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().nth(1))
                .unwrap_or("")
                .to_string();
            if pids.contains(&ppid) && !pids.contains(&pid) {
                pids.push(pid);
            }
        }
        if pids.len() == before {
            return pids;
        }
    }
}

/// Sends SIGCONT to frozen processes when the test ends, however it ends.
struct Thaw(Vec<String>);

impl Drop for Thaw {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-CONT").args(&self.0).status();
    }
}

#[tokio::test]
async fn all_checks_ok_with_timings() {
    let stack = crate::common::backed_up_stack().await;
    // The servers by name: the local machine's own resources depend on the machine.
    let all = ["ldap1", "mx1", "store1", "store2"];
    let (code, outcomes) = probe(&stack.config_path(), &all);
    for o in &outcomes {
        assert_eq!(o["state"], "OK", "{o:#}");
        assert!(o["elapsed_ms"].as_f64().unwrap() > 0.0);
        assert!(!o["steps"].as_array().unwrap().is_empty());
    }
    assert_eq!(code, 0);
    let checks: Vec<String> = outcomes
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                o["server"].as_str().unwrap(),
                o["check"].as_str().unwrap()
            )
        })
        .collect();
    for want in [
        "mx1 smtp",
        "mx1 submission",
        "mx1 e2e:store1",
        "mx1 e2e:store2",
        "store1 imap",
        "store1 pop3",
        "store1 lmtp",
        "store2 imap",
        "store2 pop3",
        "store1 imaps",
        "store1 pop3s",
        "ldap1 ldap",
    ] {
        assert!(
            checks.iter().any(|c| c == want),
            "{want} missing from {checks:?}"
        );
    }
    // The probe mailbox starts empty: the check appends its own message unless the concurrent
    // end-to-end message got there first.
    // Dovecot offers STARTTLS: the probe takes it, and verifies the certificate.
    let imap = steps(find(&outcomes, "store1", "imap"));
    assert_eq!(
        imap[..6],
        ["connect", "banner", "starttls", "tls", "login", "select"],
        "{imap:?}"
    );
    assert_eq!(imap.last().map(String::as_str), Some("fetch"), "{imap:?}");
    // The end-to-end check deleted its message: no e2e mail is left in either probe Maildir.
    for (store, dom) in [("store1", "example.com"), ("store2", "example.org")] {
        let md = stack
            .base()
            .join(store)
            .join("mail")
            .join(dom)
            .join("probe/Maildir");
        let left: Vec<_> = ["new", "cur"]
            .iter()
            .flat_map(|d| {
                std::fs::read_dir(md.join(d))
                    .into_iter()
                    .flatten()
                    .flatten()
            })
            .filter(|e| {
                std::fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .contains("mailfleet-e2e")
            })
            .collect();
        assert!(
            left.is_empty(),
            "probe mail left in {}: {left:?}",
            md.display()
        );
    }
    let e2e = find(&outcomes, "mx1", "e2e:store2");
    assert!(
        e2e["message"]
            .as_str()
            .unwrap()
            .starts_with("delivered in "),
        "{e2e}"
    );
}

#[tokio::test]
async fn a_stopped_store_is_critical() {
    let stack = TestStack::start().await.expect("stack");
    mailfleet_stack::dovecot::stop(&mailfleet_stack::Layout::new(&stack.base()), "store2")
        .expect("stop");
    let (code, outcomes) = probe(&stack.config_path(), &["store1", "store2"]);
    assert_eq!(code, 2);
    for check in ["imap", "pop3", "lmtp"] {
        assert_eq!(find(&outcomes, "store2", check)["state"], "CRITICAL");
        assert_eq!(find(&outcomes, "store1", check)["state"], "OK");
    }
    let msg = find(&outcomes, "store2", "imap")["message"]
        .as_str()
        .unwrap();
    assert!(msg.starts_with("connect:"), "{msg}");
}

#[tokio::test]
async fn a_frozen_store_is_critical_within_the_timeout() {
    let stack = TestStack::start().await.expect("stack");
    let pids = dovecot_pids(&stack.base(), "store2");
    assert!(
        Command::new("kill")
            .arg("-STOP")
            .args(&pids)
            .status()
            .unwrap()
            .success()
    );
    let _thaw = Thaw(pids);
    let started = Instant::now();
    let (code, outcomes) = probe(&stack.config_path(), &["store2"]);
    let took = started.elapsed();
    assert_eq!(code, 2);
    for check in ["imap", "pop3", "lmtp"] {
        let o = find(&outcomes, "store2", check);
        assert_eq!(o["state"], "CRITICAL", "{o:#}");
        assert!(
            o["message"]
                .as_str()
                .unwrap()
                .contains("no answer within 5.0 s"),
            "{o:#}"
        );
    }
    // The product's promise: a check that gets no answer ends at the probe's deadline, and
    // checks run at once. Margin: 3 s for starting the process and a loaded machine.
    let deadline = stack.config().unwrap().probe.timeout;
    assert!(
        took < deadline + Duration::from_secs(3),
        "the round took {took:?} (deadline {deadline:?})"
    );
}

#[tokio::test]
async fn unreadable_mailbox_is_critical_while_login_works() {
    let stack = crate::common::backed_up_stack().await;
    // A first round creates the probe mailbox and its message.
    let (code, _) = probe(&stack.config_path(), &["store1"]);
    assert_eq!(code, 0);
    let cur = stack
        .base()
        .join("store1/mail/example.com/probe/Maildir/cur");
    assert!(
        Command::new("chmod")
            .arg("000")
            .arg(&cur)
            .status()
            .unwrap()
            .success()
    );
    let (code, outcomes) = probe(&stack.config_path(), &["store1"]);
    let imap = find(&outcomes, "store1", "imap");
    assert_eq!(imap["state"], "CRITICAL", "{imap:#}");
    assert_eq!(code, 2);
    assert!(
        steps(imap).contains(&"login".to_string()),
        "login worked: {imap:#}"
    );
    let _ = Command::new("chmod").arg("700").arg(&cur).status();
}

#[tokio::test]
async fn unknown_server_and_missing_password_are_reported() {
    let stack = crate::common::backed_up_stack().await;
    let out = crate::common::mailfleet(&[
        "--config",
        stack.config_path().to_str().unwrap(),
        "probe",
        "nosuch",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown server \"nosuch\""));
    std::fs::remove_file(stack.base().join("probe.secret")).unwrap();
    let (code, outcomes) = probe(&stack.config_path(), &["store1"]);
    assert_eq!(find(&outcomes, "store1", "imap")["state"], "UNKNOWN");
    assert_eq!(code, 3);
}

/// The stack's config with extra `[probe]` settings.
fn config_with(stack: &TestStack, extra: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(stack.config_path()).unwrap();
    let text = text.replacen(
        "timeout_secs = 5\n",
        &format!("timeout_secs = 5\n{extra}\n"),
        1,
    );
    let path = stack.base().join("probe-test.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn undeliverable_mail_raises_the_queue_alarm() {
    let stack = TestStack::start().await.expect("stack");
    let config = config_with(&stack, "queue_warning = 2\nqueue_critical = 5");
    let (_, outcomes) = probe(&config, &["mx1"]);
    assert_eq!(find(&outcomes, "mx1", "queue")["state"], "OK");
    mailfleet_stack::dovecot::stop(&mailfleet_stack::Layout::new(&stack.base()), "store2")
        .expect("stop");
    let p = &stack.info.ports;
    for i in 0..6 {
        crate::common::send(
            p.smtp,
            "alice@example.com",
            "carol@example.org",
            &format!("stuck {i}"),
        )
        .await;
    }
    let (_, outcomes) = probe(&config, &["mx1"]);
    let q = find(&outcomes, "mx1", "queue");
    assert_eq!(q["state"], "CRITICAL", "{q:#}");
    let msg = q["message"].as_str().unwrap();
    // The six stuck messages, and the probe's own end-to-end message to store2 (stuck too).
    let total: u64 = msg.split_whitespace().next().unwrap().parse().unwrap();
    assert!(total >= 6 && msg.contains("example.org"), "{msg}");
}

#[tokio::test]
async fn local_resources_are_checked_against_thresholds() {
    let stack = TestStack::start().await.expect("stack");
    let (_, outcomes) = probe(&stack.config_path(), &["local"]);
    let checks: Vec<&str> = outcomes
        .iter()
        .map(|o| o["check"].as_str().unwrap())
        .collect();
    for want in [
        "cpu",
        "load",
        "memory",
        "swap",
        "disk:/",
        "inodes:/",
        "net-errors",
        "tcp-listen-overflows",
    ] {
        assert!(checks.contains(&want), "{want} missing from {checks:?}");
    }
    // Any used disk is over 1%: with that threshold the root filesystem is at least WARNING.
    let strict = config_with(
        &stack,
        "resource_warning_pct = 1\nresource_critical_pct = 100",
    );
    let (code, outcomes) = probe(&strict, &["local"]);
    let root = outcomes.iter().find(|o| o["check"] == "disk:/").unwrap();
    assert_eq!(root["state"], "WARNING", "{root:#}");
    assert!(code >= 1);
}

#[tokio::test]
async fn prometheus_output_passes_promtool() {
    let stack = TestStack::start().await.expect("stack");
    let out = crate::common::mailfleet(&[
        "--config",
        stack.config_path().to_str().unwrap(),
        "probe",
        "--prometheus",
    ]);
    // The exit code is the worst state, and on a busy machine the load check may warn.
    assert!(
        matches!(out.status.code(), Some(0..=3)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("mailfleet_check_state{server=\"store1\",check=\"imap\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("step=\"connect_2\""),
        "the e2e check's second connect is numbered"
    );
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/install-stack installs it)");
    use std::io::Write;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let res = promtool.wait_with_output().unwrap();
    assert!(
        res.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr)
    );
}

// Multi-threaded: the HTTP server runs in this test's runtime while the test waits on the
// probe process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_check_gets_the_path_and_judges_the_status() {
    let stack = TestStack::start().await.expect("stack");
    // A real HTTP server on loopback: the monitor's own /metrics endpoint.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(mailfleet_probe::monitor::serve_metrics(
        listener,
        Default::default(),
        mailfleet_core::shutdown::Shutdown::never(),
    ));
    let mut text = std::fs::read_to_string(stack.config_path()).unwrap();
    // Two servers may not share host:port, so web2 names the same listener as localhost.
    for (name, host, path) in [
        ("web1", "127.0.0.1", "/metrics"),
        ("web2", "localhost", "/missing"),
    ] {
        text.push_str(&format!(
            "\n[[server]]\nname = \"{name}\"\nroles = [\"proxy\"]\nhost = \"{host}\"\nports = {{ http = {port} }}\nhttp_path = \"{path}\"\n"
        ));
    }
    let config = stack.base().join("http.toml");
    std::fs::write(&config, text).unwrap();
    let (_, outcomes) = probe(&config, &["web1", "web2"]);
    let ok = find(&outcomes, "web1", "http");
    assert_eq!(ok["state"], "OK", "{ok:#}");
    assert!(ok["message"].as_str().unwrap().contains("200"), "{ok:#}");
    let missing = find(&outcomes, "web2", "http");
    assert_eq!(missing["state"], "CRITICAL", "{missing:#}");
    assert!(
        missing["message"].as_str().unwrap().contains("404"),
        "{missing:#}"
    );
}

#[tokio::test]
async fn a_replica_that_stops_following_its_master_is_critical() {
    let stack = TestStack::start().await.expect("stack");
    let config = config_with(&stack, "");
    let (_, outcomes) = probe(&config, &["ldap2"]);
    let r = find(&outcomes, "ldap2", "replica");
    assert_eq!(r["state"], "OK", "{r:#}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .starts_with("in sync with ldap1"),
        "{r:#}"
    );

    // The replica runs but cannot reach its provider: it serves stale data.
    let layout = mailfleet_stack::Layout::new(&stack.base());
    let dir = layout.ldap_replica();
    let log = stack.base().join("log/slapd-replica.log");
    let port = stack.info.ports.ldap_replica;
    mailfleet_stack::slapd::stop(&dir).unwrap();
    let conf = std::fs::read_to_string(dir.join("slapd.conf")).unwrap();
    let master = stack.info.ports.ldap;
    let provider = format!(
        "provider=ldap://{}:{master}",
        crate::common::host_of(master)
    );
    std::fs::write(
        dir.join("slapd.conf"),
        conf.replace(&provider, "provider=ldap://127.0.0.1:1"),
    )
    .unwrap();
    let mut stale =
        mailfleet_stack::slapd::start(&dir, &log, crate::common::host_of(port), port).unwrap();
    // A change on the master the replica never sees.
    let book = mailfleet_core::AccountBook::open(&stack.ldap_config().unwrap())
        .await
        .unwrap();
    book.add("newcomer@example.com", "store1", None)
        .await
        .unwrap();
    let strict = stack.base().join("strict.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "replica_of = \"ldap1\"",
        "replica_of = \"ldap1\"\nreplica_max_lag_secs = 0",
    );
    std::fs::write(&strict, text).unwrap();
    let (code, outcomes) = probe(&strict, &["ldap2"]);
    let r = find(&outcomes, "ldap2", "replica");
    assert_eq!(r["state"], "CRITICAL", "{r:#}");
    assert!(
        r["message"].as_str().unwrap().contains("behind ldap1"),
        "{r:#}"
    );
    assert_eq!(code, 2);

    // Back on its provider, it catches up.
    mailfleet_stack::slapd::stop(&dir).unwrap();
    stale.wait().unwrap();
    std::fs::write(dir.join("slapd.conf"), conf).unwrap();
    let mut fixed =
        mailfleet_stack::slapd::start(&dir, &log, crate::common::host_of(port), port).unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, outcomes) = probe(&strict, &["ldap2"]);
        if find(&outcomes, "ldap2", "replica")["state"] == "OK" {
            break;
        }
        assert!(
            Instant::now() < end,
            "the replica never caught up: {outcomes:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    mailfleet_stack::slapd::stop(&dir).unwrap();
    fixed.wait().unwrap();
}

//! Upgrades run by the daemon (`[serve] parts` with `runs`), on the demo fleet with mf-tools
//! 1.0 installed and 1.1 published: the page plans ldap1's upgrade and starts it, the daemon
//! runs it to its end (ldap1 on 1.1, ldap2 untouched); `mailfleet upgrade run --servers
//! ldap2` hands its run to the daemon and prints its record. A run of mx1 and mx2 started
//! from the page is cut by SIGTERM: the daemon halts it before its next server and exits
//! within its grace; started again, the daemon resumes it from the page to its end. The audit
//! log has each start with its operator and result.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::serve_listening;
use crate::serve_web::{enc, http, login, operator_hash};
use crate::upgrade_run::{prepare, versions};

const PASSWORD: &str = "upgrades operator password";

fn api(port: u16, session: &str) -> Value {
    let r = http(port, "GET", "/api/upgrades", Some(session), "");
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

/// Waits until the daemon's latest upgrade run (of `n`) ended; the API's answer then.
fn ended(port: u16, session: &str, n: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let v = api(port, session);
        let runs = v["runs"].as_array().unwrap();
        if runs.len() == n && !runs[0]["ended"].is_null() {
            return v;
        }
        assert!(Instant::now() < deadline, "the run never ended: {v:#}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn version(config: &mailfleet_core::Config, server: &str) -> String {
    versions(config)
        .into_iter()
        .find(|(s, _)| s == server)
        .unwrap()
        .1
}

fn session(port: u16) -> String {
    let (r, _) = login(port, "admin", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.body);
    r.cookie().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_plans_runs_halts_and_resumes_upgrades() {
    let stack = crate::common::backed_up_stack().await;
    let config = stack.config().unwrap();
    let upgrade = prepare(&stack, &config);
    let port = mailfleet_stack::ports::free_ports("127.0.0.1", 1)[0];
    let hash = operator_hash(&stack.base(), PASSWORD);
    let path = upgrade.with_file_name("serve-upgrades.toml");
    std::fs::write(
        &path,
        std::fs::read_to_string(&upgrade).unwrap()
            + &format!(
                "\n[serve]\nparts = [\"web\", \"runs\"]\nlisten = \"127.0.0.1:{port}\"\n\
                 [[serve.operators]]\nname = \"admin\"\npassword_hash = \"{hash}\"\n"
            ),
    )
    .unwrap();
    let c = path.to_str().unwrap();
    let mut serve = serve_listening(&path, port).await;
    let s = session(port);

    // The plan, asked for on the page, then started there.
    let page = http(
        port,
        "GET",
        "/upgrades?servers=ldap1&packages=mf-tools&plan=1",
        Some(&s),
        "",
    );
    assert!(
        page.body.contains("<tr data-server=\"ldap1\">")
            && page.body.contains("Start this upgrade"),
        "{}",
        page.body
    );
    let csrf = page.csrf();
    let start = format!("servers=ldap1&packages=mf-tools&csrf={}", enc(&csrf));
    let r = http(port, "POST", "/upgrades/start", Some(&s), &start);
    assert_eq!(r.status, 303, "{}", r.body);
    let v = ended(port, &s, 1);
    assert_eq!(v["runs"][0]["ended"]["code"], 0, "{v:#}");
    assert_eq!(v["run"]["state"], "done", "{v:#}");
    assert_eq!(version(&config, "ldap1"), "1.1");
    assert_eq!(version(&config, "ldap2"), "1.0");

    // The command line hands its run to the daemon and prints the record.
    let out = Command::new(env!("CARGO_BIN_EXE_mailfleet"))
        .args(["--config", c, "upgrade", "run", "--servers", "ldap2"])
        .args(["--packages", "mf-tools"])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("runs in the daemon"), "{stderr}");
    assert!(stdout.contains("ldap2"), "{stdout}");
    assert_eq!(version(&config, "ldap2"), "1.1");
    assert_eq!(ended(port, &s, 2)["runs"][0]["who"], "root (command line)");

    // SIGTERM while mx1's step runs: halted before mx2, the daemon gone within its grace.
    let start = format!("servers=mx1,mx2&packages=mf-tools&csrf={}", enc(&csrf));
    let r = http(port, "POST", "/upgrades/start", Some(&s), &start);
    assert_eq!(r.status, 303, "{}", r.body);
    let deadline = Instant::now() + Duration::from_secs(120);
    while api(port, &s)["run"]["steps"]
        .as_array()
        .is_none_or(|steps| steps.len() != 2)
    {
        assert!(Instant::now() < deadline, "the mx run never began");
        std::thread::sleep(Duration::from_millis(100));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(serve.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    // The daemon's grace for runs (120 s) and 30 s of margin.
    let deadline = Instant::now() + Duration::from_secs(150);
    let status = loop {
        if let Some(st) = serve.0.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "the daemon did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
    // `upgrade status` of a halted run exits 1, as `upgrade run` does.
    let out = crate::common::mailfleet(&["--config", c, "--json", "upgrade", "status"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["state"], "halted", "{status:#}");
    let why = status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|st| st["error"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(why.contains("the daemon stopped"), "{status:#}");
    assert_eq!(version(&config, "mx2"), "1.0");

    // Started again, the daemon resumes it from the page.
    drop(serve);
    let _serve = serve_listening(&path, port).await;
    let s = session(port);
    let page = http(port, "GET", "/upgrades", Some(&s), "");
    assert!(page.body.contains("Resume"), "{}", page.body);
    let resume = format!("csrf={}", enc(&page.csrf()));
    let r = http(port, "POST", "/upgrades/resume", Some(&s), &resume);
    assert_eq!(r.status, 303, "{}", r.body);
    let v = ended(port, &s, 1);
    assert_eq!(v["runs"][0]["ended"]["code"], 0, "{v:#}");
    assert_eq!(v["run"]["state"], "done", "{v:#}");
    assert_eq!(version(&config, "mx1"), "1.1");
    assert_eq!(version(&config, "mx2"), "1.1");

    let audit = crate::common::mailfleet_json(c, &["audit", "log"]);
    let of = |action: &str, via: &str| -> Vec<Value> {
        audit["actions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["action"] == action && a["via"] == via)
            .cloned()
            .collect()
    };
    let web_runs = of("upgrade run", "web");
    assert_eq!(web_runs.len(), 2, "{audit:#}");
    assert!(web_runs.iter().all(|a| a["who"] == "admin"));
    assert_eq!(web_runs[0]["result"], "ok");
    let cli_runs = of("upgrade run", "cli");
    assert_eq!(cli_runs.len(), 1, "{audit:#}");
    assert_eq!(cli_runs[0]["result"], "ok");
    let resumed = of("upgrade resume", "web");
    assert_eq!(resumed.len(), 1, "{audit:#}");
    assert_eq!(resumed[0]["result"], "ok");
}

//! The dashboard in a real browser (Debian's chromium, driven by chromium-driver through
//! WebDriver): an operator logs in; every check of every demo server shows OK (CPU, load and
//! I/O peaks of the shared test machine aside); with store2's
//! Dovecot stopped by SIGSTOP its rows turn CRITICAL without a reload, within the monitor's
//! interval plus the probe's deadline and a margin, and come back to OK after SIGCONT; mail
//! held by the quota is released from the page and arrives; the charts draw the history with
//! store2's CRITICAL spans; a send block is lifted from the policy page; a backup started
//! from the page finishes there; the audit log page shows each action with its operator.
//! Screenshots of the pages are saved under `target/test-artifacts/`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use nix::sys::signal::Signal;

use crate::common::ChildGuard;

const PASSWORD: &str = "dashboard-demo";

/// The state of each row of the fleet's table, as the browser shows it: (server, check, state).
async fn rows(c: &Client) -> Vec<(String, String, String)> {
    let v = c
        .execute(
            "return Array.from(document.querySelectorAll('#checks tr[data-server]')).map(r => \
             [r.dataset.server, r.dataset.check, r.cells[2].textContent]);",
            vec![],
        )
        .await
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let r = r.as_array().unwrap();
            let s = |i: usize| r[i].as_str().unwrap().to_string();
            (s(0), s(1), s(2))
        })
        .collect()
}

/// Waits until `want` holds for the rows the page shows, without reloading it.
async fn wait_rows(
    c: &Client,
    within: Duration,
    what: &str,
    want: impl Fn(&[(String, String, String)]) -> bool,
) {
    let deadline = Instant::now() + within;
    loop {
        let now = rows(c).await;
        if want(&now) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never shown within {within:?}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn screenshot(c: &Client, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{name}.png")),
        c.screenshot().await.unwrap(),
    )
    .unwrap();
}

fn signal(pid_file: &std::path::Path, s: Signal) {
    let pid: i32 = std::fs::read_to_string(pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), s).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_sees_the_fleet_live_in_a_browser() {
    let stack = crate::common::backed_up_stack().await;
    let config = stack.config().unwrap();
    let ports = mailfleet_stack::ports::free_ports("127.0.0.1", 3);
    let (web, driver_port, policy) = (ports[0], ports[1], ports[2]);
    let mx1_conf = stack.base().join("mx1/conf");
    let hash = crate::serve_web::operator_hash(&stack.base(), PASSWORD);
    let interval = 2;
    let path = stack.config_path().with_file_name("serve.toml");
    std::fs::write(
        &path,
        std::fs::read_to_string(stack.config_path()).unwrap()
            + &format!(
                "\n[monitor]\ninterval_secs = {interval}\n\n\
                 [policy]\nlisten = \"127.0.0.1:{policy}\"\nwindow_secs = 3600\nrelease_interval_secs = 3600\n\
                 block_refresh_secs = 3600\npostfix_config_dir = {mx1_conf:?}\n\
                 [[policy.quota]]\nfor = \"dave@example.org\"\nmessages = 1\n\n\
                 [serve]\nparts = [\"monitor\", \"policy\", \"web\", \"runs\"]\n\
                 listen = \"127.0.0.1:{web}\"\n[[serve.operators]]\nname = \"admin\"\npassword_hash = \"{hash}\"\n"
            ),
    )
    .unwrap();
    let _serve = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_mailfleet"))
            .args(["--config", path.to_str().unwrap(), "serve"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _driver = ChildGuard(
        Command::new("chromedriver")
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut caps = serde_json::map::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({ "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                     "--disable-dev-shm-usage", "--window-size=1280,1000"] }),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let c = loop {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{driver_port}"))
            .await
        {
            Ok(c) => break c,
            Err(e) => {
                assert!(Instant::now() < deadline, "no WebDriver session: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let base = format!("http://127.0.0.1:{web}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", web)).is_err() {
        assert!(Instant::now() < deadline, "the dashboard never listened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Without a session the dashboard sends the browser to its login.
    c.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/login");
    screenshot(&c, "dashboard-login").await;
    c.find(Locator::Css("input[name=name]"))
        .await
        .unwrap()
        .send_keys("admin")
        .await
        .unwrap();
    c.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    c.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait().for_element(Locator::Id("checks")).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/");

    // Every demo server, every check OK (the first round may still be under way).
    let servers: Vec<String> = config
        .fleet
        .servers
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let probe = config.probe.timeout;
    let bound = Duration::from_secs(interval) + probe + Duration::from_secs(20);
    // CPU, load and I/O peaks of this shared test machine are its own, not the fleet's.
    let momentary = |chk: &str| chk == "cpu" || chk == "load" || chk.starts_with("io:");
    wait_rows(&c, bound, "every server OK", |rows| {
        servers
            .iter()
            .all(|s| rows.iter().any(|(srv, _, _)| srv == s))
            && rows
                .iter()
                .filter(|(_, chk, _)| !momentary(chk))
                .all(|(_, _, st)| st == "OK")
    })
    .await;
    screenshot(&c, "dashboard-fleet-ok").await;

    // store2's Dovecot stops answering: its rows turn CRITICAL in the open page.
    let store2 = config.fleet.server("store2").unwrap();
    let pid_file = store2.pid_file.clone().unwrap();
    signal(&pid_file, Signal::SIGSTOP);
    let stopped = Instant::now();
    wait_rows(&c, bound, "store2 CRITICAL", |rows| {
        rows.iter()
            .any(|(s, chk, st)| s == "store2" && chk == "imap" && st == "CRITICAL")
    })
    .await;
    screenshot(&c, "dashboard-store2-critical").await;
    signal(&pid_file, Signal::SIGCONT);
    // Its first rounds after SIGCONT may still carry the stopped time's timeouts.
    wait_rows(&c, bound * 2, "store2 OK again", |rows| {
        rows.iter()
            .filter(|(s, chk, _)| s == "store2" && !momentary(chk))
            .all(|(_, _, st)| st == "OK")
    })
    .await;
    assert!(stopped.elapsed() < bound * 3);

    // The charts draw the history: every store's IMAP line, store2's CRITICAL spans marked,
    // the MTAs' queue sizes.
    c.goto(&format!("{base}/charts?range=1h")).await.unwrap();
    let drawn = c
        .execute(
            "return Array.from(document.querySelectorAll('figure.chart')).map(f =>              [f.dataset.family, f.querySelectorAll('polyline, circle').length,               f.querySelectorAll('rect.critical').length, f.querySelector('ul.legend') ? f.querySelector('ul.legend').textContent : '']);",
            vec![],
        )
        .await
        .unwrap();
    let of = |family: &str| {
        drawn
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f[0] == family)
            .unwrap_or_else(|| panic!("no {family} chart: {drawn}"))
            .clone()
    };
    let imap = of("imap");
    assert!(imap[1].as_u64().unwrap() >= 2, "{imap}");
    assert!(
        imap[2].as_u64().unwrap() >= 1,
        "store2's CRITICAL rounds unmarked: {imap}"
    );
    assert!(imap[3].as_str().unwrap().contains("store2 imap"), "{imap}");
    let queue = of("queue");
    assert!(queue[3].as_str().unwrap().contains("mx1 queue"), "{queue}");
    screenshot(&c, "dashboard-charts").await;

    // Held mail released from the page arrives in the recipient's Maildir.
    crate::policy::hook_postfix(&stack, &path);
    for n in 0..2 {
        crate::policy::submit(
            &stack,
            "dave@example.org",
            &["bob@example.com"],
            &format!("dave-web-{n}"),
        )
        .await
        .unwrap();
    }
    crate::policy::wait_for(
        "dave's second message held",
        Duration::from_secs(30),
        || crate::policy::held_of(&stack, "dave@example.org") == 1,
    );
    let row = "#held tr[data-account='dave@example.org']";
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        c.goto(&format!("{base}/policy")).await.unwrap();
        if c.find(Locator::Css(row)).await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "dave's held mail never listed");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    screenshot(&c, "dashboard-held").await;
    c.find(Locator::Css(&format!(
        "{row} form[action='/policy/release'] button"
    )))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    crate::policy::wait_for(
        "the released mail delivered",
        Duration::from_secs(30),
        || {
            crate::policy::held_of(&stack, "dave@example.org") == 0
                && crate::policy::delivered(&stack, "dave-web-") == 2
        },
    );

    // The policy page lists dave among the top senders; a block set from the command line
    // is shown there and lifted from the page.
    let senders = c
        .find(Locator::Id("senders"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(senders.contains("dave@example.org"), "{senders}");
    crate::common::mailfleet_ok(
        &path,
        &[
            "policy",
            "block",
            "erin@example.com",
            "--reason",
            "spam run",
        ],
    );
    c.goto(&format!("{base}/policy")).await.unwrap();
    let blocked = "#blocked tr[data-account='erin@example.com']";
    let text = c
        .find(Locator::Css(blocked))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("spam run"), "{text}");
    screenshot(&c, "dashboard-policy").await;
    c.find(Locator::Css(&format!("{blocked} button")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The click returns once it is sent, not once the page's POST is answered.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = crate::common::mailfleet_json(path.to_str().unwrap(), &["policy", "blocked"]);
        if left == serde_json::json!([]) {
            break;
        }
        assert!(Instant::now() < deadline, "erin is still blocked: {left}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        c.find(Locator::Css(blocked)).await.is_err(),
        "the page still lists erin"
    );

    // A backup started from the page runs and finishes there.
    c.goto(&format!("{base}/backups")).await.unwrap();
    c.find(Locator::Css("form[action='/backups/run'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        c.goto(&format!("{base}/backups")).await.unwrap();
        let p = c.find(Locator::Id("backup")).await.unwrap();
        if p.attr("data-state").await.unwrap().as_deref() == Some("finished") {
            break p.text().await.unwrap();
        }
        assert!(Instant::now() < deadline, "the backup never finished");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        done.contains("Started by admin") && done.contains("backed up"),
        "{done}"
    );
    // The repository shows both snapshots (the stack's first and this one), each store's
    // freshness from the monitor, and what deduplication saves.
    let snapshots = c
        .find_all(Locator::Css("#snapshots tr[data-id]"))
        .await
        .unwrap();
    assert!(snapshots.len() >= 2, "{} snapshots listed", snapshots.len());
    let repo = c
        .find(Locator::Id("repository"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(repo.contains("deduplication"), "{repo}");
    let fresh = c
        .find(Locator::Id("freshness"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        fresh.contains("store1") && fresh.contains("store2"),
        "{fresh}"
    );
    screenshot(&c, "dashboard-backups").await;

    // The alarms; a drain of store2 and the fleet's upgrade, planned (nothing started).
    c.goto(&format!("{base}/alarms")).await.unwrap();
    c.find(Locator::Id("active")).await.unwrap();
    screenshot(&c, "dashboard-alarms").await;
    c.goto(&format!("{base}/moves?drain=store2")).await.unwrap();
    let planned = c
        .find(Locator::Id("placements"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(planned.contains("erin@example.com"), "{planned}");
    c.find(Locator::XPath("//button[text()='Start these moves']"))
        .await
        .unwrap();
    screenshot(&c, "dashboard-moves-plan").await;
    c.goto(&format!("{base}/upgrades?plan=1")).await.unwrap();
    let steps = c
        .find(Locator::Id("plan-steps"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        steps.contains("ldap1") && steps.contains("store2"),
        "{steps}"
    );
    screenshot(&c, "dashboard-upgrades-plan").await;

    // The audit log shows both actions with their operator.
    c.goto(&format!("{base}/audit")).await.unwrap();
    let audit = c
        .find(Locator::Id("audit"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for want in [
        "policy release dave@example.org",
        "policy unblock erin@example.com",
        "backup run",
    ] {
        let line = audit.lines().find(|l| l.contains(want));
        assert!(
            line.is_some_and(|l| l.contains("admin (web)") && l.contains("ok")),
            "{want}: {audit}"
        );
    }
    screenshot(&c, "dashboard-audit").await;
    c.close().await.unwrap();
}

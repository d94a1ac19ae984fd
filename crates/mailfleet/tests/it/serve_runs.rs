//! Moves run by the daemon (`[serve] parts` with `runs`): `mailfleet move` hands its batch
//! to the daemon over the data directory's socket (mode 0600) and says so; killing the
//! command leaves the move running, and it ends done with alice's mail on store2, the
//! daemon writing its result into the command's audit record. From the dashboard, a second
//! start while a run goes on is refused, and "Move back", planned on the page first (an
//! unknown account's plan says so), returns her to store1; `/moves`
//! lists the batch, `/api/moves` has the daemon's two runs with their results; the page's
//! run is in the audit log by the operator with `ok`.

use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{ChildGuard, send_via, serve_listening, unique_tag, wait_for_mail};
use crate::serve_web::{enc, http, login, operator_hash};

const PASSWORD: &str = "runs operator password";

fn api(port: u16, session: &str, path: &str) -> Value {
    let r = http(port, "GET", path, Some(session), "");
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

/// Waits (`limit` at most) until the daemon's move runs are `n` and all ended; the last one.
fn ended_runs(port: u16, session: &str, n: usize, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let v = api(port, session, "/api/moves");
        let runs = v["runs"].as_array().unwrap().clone();
        if runs.len() == n && runs.iter().all(|r| !r["ended"].is_null()) {
            return runs[0].clone();
        }
        assert!(Instant::now() < deadline, "runs not ended: {v:#}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn moves_started_from_the_command_line_and_the_page_run_in_the_daemon() {
    let stack = mailfleet_stack::TestStack::start().await.expect("stack");
    let config = stack.config().unwrap();
    let port = mailfleet_stack::ports::free_ports("127.0.0.1", 1)[0];
    let hash = operator_hash(&stack.base(), PASSWORD);
    let path = stack.config_path().with_file_name("serve.toml");
    std::fs::write(
        &path,
        std::fs::read_to_string(stack.config_path()).unwrap()
            + &format!(
                "\n[serve]\nparts = [\"web\", \"runs\"]\nlisten = \"127.0.0.1:{port}\"\n\
                 [[serve.operators]]\nname = \"admin\"\npassword_hash = \"{hash}\"\n"
            ),
    )
    .unwrap();
    let c = path.to_str().unwrap();
    let serve = serve_listening(&path, port).await;
    let socket = config.data_dir.join("serve.sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", socket.display());

    let (imap1, imap2) = (
        stack.info.ports.stores[0].imap,
        stack.info.ports.stores[1].imap,
    );
    let tag = unique_tag("runs");
    let mx1 = config.fleet.server("mx1").unwrap();
    for i in 0..5 {
        send_via(
            &mx1.host,
            mx1.ports.smtp.unwrap(),
            "bob@example.com",
            "alice@example.com",
            &format!("{tag} {i}"),
        )
        .await;
    }
    let limit = Duration::from_secs(60);
    wait_for_mail(imap1, "alice@example.com", &format!("{tag} 4"), limit).await;

    // The command hands the move over, says so, and is killed: the move goes on.
    let mut cli = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_mailfleet"))
            .args(["--config", c, "move", "alice@example.com", "--to", "store2"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = cli.0.stderr.take().unwrap();
    let said = std::io::BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("runs in the daemon"))
        .expect("the command never said it handed the move over");
    assert!(said.contains(&format!("PID {}", serve.0.id())), "{said}");
    cli.0.kill().unwrap();
    cli.0.wait().unwrap();

    let (first, session) = {
        let (r, _) = login(port, "admin", PASSWORD);
        assert_eq!(r.status, 303, "{}", r.body);
        let session = r.cookie().unwrap();
        (
            ended_runs(port, &session, 1, Duration::from_secs(180)),
            session,
        )
    };
    assert_eq!(first["ended"]["code"], 0, "{first:#}");
    assert_eq!(first["who"], "root (command line)", "{first:#}");
    let moved = wait_for_mail(imap2, "alice@example.com", &format!("{tag} 4"), limit).await;
    assert_eq!(moved.len(), 1);
    let shown = crate::common::mailfleet_ok(&path, &["accounts", "show", "alice@example.com"]);
    assert!(shown.contains("store2"), "{shown}");

    // The page: the batch listed, the move back started there.
    let page = http(port, "GET", "/moves", Some(&session), "");
    assert!(
        page.body
            .contains("data-account=\"alice@example.com\" data-phase=\"done\""),
        "{}",
        page.body
    );
    let csrf = page.csrf();
    // The plan first: alice back to store1, with the button that starts it.
    let plan = http(port, "GET", "/moves?back=store1", Some(&session), "");
    assert!(
        plan.body
            .contains("<tr data-account=\"alice@example.com\" data-target=\"store1\">")
            && plan.body.contains("action=\"/moves/back\"")
            && plan.body.contains("Start these moves"),
        "{}",
        plan.body
    );
    let api_plan = api(port, &session, "/api/moves?back=store1");
    assert_eq!(api_plan["plan"]["what"], "move back store1", "{api_plan:#}");
    let unknown = api(
        port,
        &session,
        "/api/moves?accounts=nobody%40example.com&to=store1",
    );
    assert!(!unknown["plan"].is_null(), "{unknown:#}");
    assert!(
        unknown["plan"]["error"].is_string()
            || !unknown["plan"]["refused"].as_array().unwrap().is_empty(),
        "{unknown:#}"
    );
    let nope = http(
        port,
        "POST",
        "/moves/back",
        Some(&session),
        "store=store1&csrf=nope",
    );
    assert_eq!(nope.status, 403);
    let back = format!("store=store1&csrf={}", enc(&csrf));
    let r = http(port, "POST", "/moves/back", Some(&session), &back);
    assert_eq!(r.status, 303, "{}", r.body);
    // One move run at a time: a second start while it runs is refused (or, if the move
    // back already ended, it finds nothing left to give back and ends at once).
    let again = http(port, "POST", "/moves/back", Some(&session), &back);
    assert!(matches!(again.status, 303 | 409), "{}", again.body);
    if again.status == 409 {
        assert!(again.body.contains("still runs"), "{}", again.body);
    }
    let runs_now = if again.status == 409 { 2 } else { 3 };
    let last = ended_runs(port, &session, runs_now, Duration::from_secs(180));
    assert_eq!(last["ended"]["code"], 0, "{last:#}");
    let v = api(port, &session, "/api/moves");
    let back_run = v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["what"] == "move back store1")
        .cloned()
        .unwrap();
    assert_eq!(back_run["who"], "admin", "{v:#}");
    assert!(
        back_run["ended"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("1 moved"),
        "{back_run:#}"
    );
    let home = wait_for_mail(imap1, "alice@example.com", &format!("{tag} 4"), limit).await;
    assert_eq!(home.len(), 1);
    let shown = crate::common::mailfleet_ok(&path, &["accounts", "show", "alice@example.com"]);
    assert!(shown.contains("store1"), "{shown}");

    // The audit log: the command's record ended by the daemon, the page's by the operator.
    let audit = api(port, &session, "/api/audit");
    let actions = audit["actions"].as_array().unwrap();
    let cli_move = actions
        .iter()
        .find(|a| a["action"] == "move" && a["via"] == "cli")
        .unwrap_or_else(|| panic!("{audit:#}"));
    assert_eq!(cli_move["who"], "root", "{cli_move:#}");
    assert_eq!(cli_move["result"], "ok", "{cli_move:#}");
    let page_back = actions
        .iter()
        .find(|a| a["action"] == "move back" && a["via"] == "web")
        .unwrap_or_else(|| panic!("{audit:#}"));
    assert_eq!(page_back["who"], "admin");
    assert_eq!(page_back["result"], "ok", "{page_back:#}");
    assert_eq!(page_back["args"], serde_json::json!(["store1"]));
}

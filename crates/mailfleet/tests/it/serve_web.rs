//! The dashboard's security, over real HTTP to `mailfleet serve`: without a session every page
//! redirects to the login and every API call gets 401; a POST without its session's CSRF
//! token is refused; ten wrong passwords brake further attempts, even with the right one; a
//! login rotates the session, which ends after its lifetime; logout needs the token; the
//! audit log holds every login with its operator and address; the password and its hash are
//! never in the daemon's log; every response carries the Content-Security-Policy.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::ChildGuard;

const PASSWORD: &str = "correct horse battery";

pub(crate) struct Reply {
    pub(crate) status: u16,
    head: String,
    pub(crate) body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// The session cookie this reply sets.
    pub(crate) fn cookie(&self) -> Option<String> {
        self.header("set-cookie")?
            .split(';')
            .next()
            .map(|c| c.trim().to_string())
    }

    /// The CSRF token of the page's form.
    pub(crate) fn csrf(&self) -> String {
        let at = self.body.find("name=\"csrf\" value=\"").unwrap() + 19;
        self.body[at..].split('"').next().unwrap().to_string()
    }
}

pub(crate) fn http(port: u16, method: &str, path: &str, cookie: Option<&str>, form: &str) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{cookie}\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

pub(crate) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(crate) fn login(port: u16, name: &str, password: &str) -> (Reply, String) {
    let form = http(port, "GET", "/login", None, "");
    let anon = form.cookie().unwrap();
    let body = format!(
        "name={}&password={}&csrf={}",
        enc(name),
        enc(password),
        form.csrf()
    );
    (http(port, "POST", "/login", Some(&anon), &body), anon)
}

/// An operator's hash of `password`, made by `mailfleet serve hash-password` from a file.
pub(crate) fn operator_hash(dir: &std::path::Path, password: &str) -> String {
    let pw = dir.join("operator-password");
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    let out = crate::common::mailfleet(&[
        "serve",
        "hash-password",
        "--password-file",
        pw.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn the_dashboard_needs_a_login_a_token_and_brakes_guessing() {
    let dir = tempfile::tempdir().unwrap();
    let hash = operator_hash(dir.path(), PASSWORD);
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let port = mailfleet_stack::ports::free_ports("127.0.0.1", 1)[0];
    let config = dir.path().join("mailfleet.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"data\"\n[serve]\nparts = [\"web\"]\nlisten = \"127.0.0.1:{port}\"\n\
             session_lifetime = \"2s\"\n[[serve.operators]]\nname = \"admin\"\npassword_hash = \"{hash}\"\n"
        ),
    )
    .unwrap();
    let log = dir.path().join("serve.log");
    let _serve = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_mailfleet"))
            .args(["--config", config.to_str().unwrap(), "serve"])
            .env("MAILFLEET_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the dashboard never listened");
        std::thread::sleep(Duration::from_millis(50));
    }

    // No session: pages redirect to the login, the API says 401.
    for page in [
        "/",
        "/alarms",
        "/audit",
        "/policy",
        "/backups",
        "/charts",
        "/upgrades",
        "/moves",
    ] {
        let r = http(port, "GET", page, None, "");
        assert_eq!(r.status, 303, "{page}: {}", r.head);
        assert_eq!(r.header("location").as_deref(), Some("/login"));
        assert!(
            r.header("content-security-policy")
                .unwrap()
                .contains("default-src 'self'")
        );
    }
    for api in [
        "/api/overview",
        "/api/audit",
        "/api/policy",
        "/api/backups",
        "/api/charts",
        "/api/upgrades",
        "/api/moves",
        "/api/alarms",
        "/events",
    ] {
        assert_eq!(http(port, "GET", api, None, "").status, 401, "{api}");
    }
    let form = http(port, "GET", "/login", None, "");
    assert_eq!(form.status, 200);
    let set = form.header("set-cookie").unwrap();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(set.contains(attr), "{set}");
    }

    // A POST without the form's token, or with another's, is refused.
    let anon = form.cookie().unwrap();
    let right = format!("name=admin&password={}", enc(PASSWORD));
    let r = http(port, "POST", "/login", Some(&anon), &right);
    assert!(
        (400..500).contains(&r.status) && r.header("set-cookie").is_none(),
        "{}",
        r.head
    );
    let r = http(
        port,
        "POST",
        "/login",
        Some(&anon),
        &format!("{right}&csrf=0000"),
    );
    assert_eq!(r.status, 403, "{}", r.head);

    // Ten wrong passwords: after five, further tries wait, the right password too.
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(login(port, "admin", "wrong").0.status);
    }
    assert_eq!(statuses[..5], [401; 5], "{statuses:?}");
    assert!(statuses[5..].contains(&429), "{statuses:?}");
    let (braked, _) = login(port, "admin", PASSWORD);
    assert_eq!(braked.status, 429, "{}", braked.head);
    assert!(braked.header("retry-after").is_some());
    assert!(braked.body.contains("Too many failed logins"));

    // Once the brake's wait is over the right password logs in, with a new session.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (ok, anon) = loop {
        let (r, anon) = login(port, "admin", PASSWORD);
        if r.status != 429 {
            break (r, anon);
        }
        assert!(Instant::now() < deadline, "still braked");
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(ok.status, 303, "{}", ok.head);
    let session = ok.cookie().unwrap();
    assert_ne!(session, anon, "the session was not rotated at login");
    let page = http(port, "GET", "/", Some(&session), "");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("No probe round yet"), "{}", page.body);
    let api = http(port, "GET", "/api/overview", Some(&session), "");
    assert_eq!(api.status, 200);
    let v: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(v["number"], 0);

    // The audit log has every login, with its operator and address.
    let audit: serde_json::Value =
        serde_json::from_str(&http(port, "GET", "/api/audit", Some(&session), "").body).unwrap();
    let logins: Vec<&serde_json::Value> = audit["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "web login")
        .collect();
    assert_eq!(logins.len(), 6, "{audit:#}");
    assert!(
        logins
            .iter()
            .all(|a| a["who"] == "admin" && a["via"] == "web" && a["from"] == "127.0.0.1")
    );
    assert_eq!(logins.iter().filter(|a| a["result"] == "ok").count(), 1);

    // The actions need the token too: nothing is started, nothing recorded.
    for (path, form) in [
        ("/backups/run", "csrf=nope".to_string()),
        (
            "/policy/release",
            "account=dave%40example.org&csrf=nope".to_string(),
        ),
        ("/policy/purge", "account=dave%40example.org".to_string()),
        ("/upgrades/start", "servers=mx1&csrf=nope".to_string()),
        ("/upgrades/resume", String::new()),
        (
            "/moves/start",
            "accounts=alice%40example.com&csrf=nope".to_string(),
        ),
        ("/moves/drain", "store=store1&csrf=nope".to_string()),
        ("/moves/back", "store=store1".to_string()),
    ] {
        let r = http(port, "POST", path, Some(&session), &form);
        assert!((400..500).contains(&r.status), "{path}: {}", r.head);
    }
    let jobs: serde_json::Value =
        serde_json::from_str(&http(port, "GET", "/api/backups", Some(&session), "").body).unwrap();
    assert!(jobs["job"].is_null(), "{jobs:#}");

    // Alarms: none yet; then the monitor's, from the history: store2's imap holds, its pop3
    // recovered.
    let r = http(port, "GET", "/alarms", Some(&session), "");
    assert!(r.body.contains("No alarm holds."), "{}", r.body);
    let sent = |kind, check: &str, state| mailfleet_notify::Notification {
        kind,
        server: "store2".into(),
        check: check.into(),
        state,
        message: format!("{check} <b>down</b>"),
    };
    use mailfleet_notify::Kind;
    use mailfleet_probe::State;
    let mut history = mailfleet_probe::history::History::open(&dir.path().join("data")).unwrap();
    let t0 = chrono::Utc::now() - chrono::Duration::minutes(5);
    history
        .record_alarms(
            t0,
            &[
                sent(Kind::Problem, "imap", State::Critical),
                sent(Kind::Problem, "pop3", State::Critical),
            ],
        )
        .unwrap();
    history
        .record_alarms(
            t0 + chrono::Duration::minutes(1),
            &[sent(Kind::Recovery, "pop3", State::Ok)],
        )
        .unwrap();
    let r = http(port, "GET", "/alarms", Some(&session), "");
    assert!(
        r.body.contains("data-count=\"1\"")
            && r.body
                .contains("<tr data-server=\"store2\" data-check=\"imap\">"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("imap &lt;b&gt;down&lt;/b&gt;"),
        "not escaped: {}",
        r.body
    );
    let api: serde_json::Value =
        serde_json::from_str(&http(port, "GET", "/api/alarms", Some(&session), "").body).unwrap();
    assert_eq!(api["past"].as_array().unwrap().len(), 3, "{api:#}");
    assert_eq!(api["past"][0]["kind"], "recovery", "{api:#}");

    // Upgrades: none yet; then a run held by a live mailfleet process (the daemon stands in
    // for `upgrade run`: the journal trusts only mailfleet processes), one of two steps done.
    let r = http(port, "GET", "/upgrades", Some(&session), "");
    assert!(r.body.contains("No upgrade has run yet"), "{}", r.body);
    let data = dir.path().join("data");
    let journal = mailfleet_upgrade::journal::Journal::open(&data).unwrap();
    let run = journal
        .begin(&[], &["mx1".to_string(), "store1".to_string()])
        .unwrap();
    journal
        .set_phase(run, 1, mailfleet_upgrade::journal::StepPhase::Done)
        .unwrap();
    rusqlite::Connection::open(data.join("upgrades.db"))
        .unwrap()
        .execute(
            "UPDATE runs SET owner = ?1 WHERE id = ?2",
            rusqlite::params![_serve.0.id(), run],
        )
        .unwrap();
    let r = http(port, "GET", "/upgrades", Some(&session), "");
    assert!(r.body.contains("1 of 2 servers done"), "{}", r.body);
    assert!(r.body.contains("done at about"), "no ETA: {}", r.body);
    assert!(r.body.contains("Stop after the current step"), "{}", r.body);
    let stop = format!("id={run}&csrf=nope");
    assert_eq!(
        http(port, "POST", "/upgrades/stop", Some(&session), &stop).status,
        403
    );
    let stop = format!("id={run}&csrf={}", r.csrf());
    let r = http(port, "POST", "/upgrades/stop", Some(&session), &stop);
    assert_eq!(r.status, 303, "{}", r.head);
    assert!(journal.get(run).unwrap().abort_requested);
    let api: serde_json::Value =
        serde_json::from_str(&http(port, "GET", "/api/upgrades", Some(&session), "").body).unwrap();
    assert_eq!(api["run"]["abort_requested"], true, "{api:#}");
    let r = http(port, "GET", "/upgrades", Some(&session), "");
    assert!(
        r.body.contains("Asked to stop after its current step"),
        "{}",
        r.body
    );

    // Logout needs the token too.
    let r = http(port, "POST", "/logout", Some(&session), "csrf=nope");
    assert_eq!(r.status, 403);
    assert_eq!(http(port, "GET", "/", Some(&session), "").status, 200);
    let r = http(
        port,
        "POST",
        "/logout",
        Some(&session),
        &format!("csrf={}", page.csrf()),
    );
    assert_eq!(r.status, 303);
    assert_eq!(http(port, "GET", "/", Some(&session), "").status, 303);

    // A session past its lifetime (2 s) is refused.
    let (ok, _) = login(port, "admin", PASSWORD);
    let session = ok.cookie().unwrap();
    assert_eq!(
        http(port, "GET", "/api/overview", Some(&session), "").status,
        200
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        http(port, "GET", "/api/overview", Some(&session), "").status,
        401
    );

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains(PASSWORD) && !text.contains(&hash),
        "a secret in the log"
    );
}

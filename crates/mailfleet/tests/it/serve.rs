//! `mailfleet serve`: the monitor (with /metrics) and the policy server in one process. SIGHUP
//! with a broken config is refused and the old config keeps answering; SIGHUP with a good one
//! takes effect (a new quota rejects); SIGTERM in the middle of a burst of policy requests
//! exits 0 within the grace, and every request answered was counted.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::common::{ChildGuard, mailfleet_json};

fn config(policy: u16, metrics: u16, quota: &str) -> String {
    format!(
        "data_dir = \"data\"\n[policy]\nlisten = \"127.0.0.1:{policy}\"\nblock_refresh_secs = 3600\n\
         release_interval_secs = 3600\n\n[monitor]\ninterval_secs = 3600\nlisten = \"127.0.0.1:{metrics}\"\n\n{quota}"
    )
}

/// One policy request at the end of a message, as Postfix sends it; the answer's action.
fn ask(c: &mut BufReader<TcpStream>, sender: &str, id: usize) -> Option<String> {
    let req = format!(
        "request=smtpd_access_policy\nprotocol_state=END-OF-MESSAGE\nprotocol_name=ESMTP\n\
         client_address=127.0.0.1\nsasl_username={sender}\nsender={sender}\n\
         recipient=bob@example.com\nrecipient_count=1\nsize=100\nqueue_id=Q{id}\n\n"
    );
    c.get_mut().write_all(req.as_bytes()).ok()?;
    let mut reply = String::new();
    loop {
        let mut line = String::new();
        if c.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\n" {
            return Some(reply);
        }
        reply.push_str(&line);
    }
}

fn connect(port: u16) -> BufReader<TcpStream> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            return BufReader::new(s);
        }
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the daemon's log says `what`.
fn wait_log(log: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(what) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the log never said {what:?}: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(child: &std::process::Child, s: Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), s).unwrap();
}

#[test]
fn one_daemon_reloads_refuses_a_broken_config_and_stops_in_a_burst() {
    let dir = tempfile::tempdir().unwrap();
    let ports = mailfleet_stack::ports::free_ports("127.0.0.1", 2);
    let (p, m) = (ports[0], ports[1]);
    let path = dir.path().join("mailfleet.toml");
    std::fs::write(&path, config(p, m, "")).unwrap();
    let log = dir.path().join("serve.log");
    let mut serve = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_mailfleet"))
            .args(["--config", path.to_str().unwrap(), "serve"])
            .env("MAILFLEET_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    // Both parts run: the policy server answers, the monitor serves /metrics.
    let mut c = connect(p);
    assert_eq!(
        ask(&mut c, "strict@example.com", 1).as_deref(),
        Some("action=DUNNO\n")
    );
    let mut http = connect(m);
    http.get_mut()
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut page = String::new();
    http.read_to_string(&mut page).unwrap();
    assert!(
        page.starts_with("HTTP/1.1 200") || page.starts_with("HTTP/1.0 200"),
        "{page}"
    );

    // A config with a mistake: refused, the running one goes on answering.
    std::fs::write(
        &path,
        config(p, m, "").replace("interval_secs = 3600", "interval_secs = -1"),
    )
    .unwrap();
    signal(&serve.0, Signal::SIGHUP);
    wait_log(&log, "the config is refused, the running one kept");
    wait_log(&log, "monitor.interval_secs");
    assert_eq!(
        ask(&mut c, "strict@example.com", 2).as_deref(),
        Some("action=DUNNO\n")
    );
    assert!(serve.0.try_wait().unwrap().is_none(), "serve exited");

    // A good config with a new quota: reloaded, and the quota holds.
    std::fs::write(
        &path,
        config(
            p,
            m,
            "[[policy.quota]]\nfor = \"strict@example.com\"\nmessages = 1\naction = \"reject\"\n",
        ),
    )
    .unwrap();
    signal(&serve.0, Signal::SIGHUP);
    wait_log(&log, "reloaded");
    wait_log(&log, "generation 2 runs monitor, policy");
    let mut c = connect(p);
    let answer = ask(&mut c, "strict@example.com", 3).unwrap();
    assert!(answer.starts_with("action=REJECT"), "{answer}");

    // A burst from four clients, then SIGTERM in its middle.
    // Each client asks until the daemon closes its connection.
    let clients: Vec<_> = (0..4usize)
        .map(|k| {
            std::thread::spawn(move || {
                let sender = format!("burst{k}@example.com");
                let mut c = connect(p);
                let mut answered = 0u64;
                while let Some(a) = ask(&mut c, &sender, k * 1_000_000 + answered as usize) {
                    assert!(a.starts_with("action="), "{a}");
                    answered += 1;
                }
                (sender, answered)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let sent = Instant::now();
    signal(&serve.0, Signal::SIGTERM);
    // The grace (10 s) for requests in flight, and 3 s for a loaded machine.
    let limit = mailfleet_core::shutdown::GRACE + Duration::from_secs(3);
    let code = loop {
        if let Some(st) = serve.0.try_wait().unwrap() {
            break st.code();
        }
        assert!(
            sent.elapsed() < limit,
            "still running {limit:?} after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(0));
    let answered: Vec<(String, u64)> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    let status = mailfleet_json(path.to_str().unwrap(), &["policy", "status"]);
    for (sender, n) in answered {
        assert!(n > 0, "{sender} got no answer before SIGTERM");
        let counted = status["senders"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["account"] == sender.as_str())
            .map_or(0, |s| s["usage"]["messages"].as_u64().unwrap());
        assert!(counted >= n, "{sender}: {n} answered, {counted} counted");
    }
}

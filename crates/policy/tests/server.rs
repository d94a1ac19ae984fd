//! The policy server over real sockets: many requests per connection, quotas answered with
//! HOLD, and malformed input (over-long lines, no `request=`, binary junk, a client that never
//! finishes) closing only that connection, never stalling the others.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;
use std::time::Duration;

use mailfleet_policy::Engine;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Running {
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
    stop: mailfleet_core::shutdown::Trigger,
    served: tokio::task::JoinHandle<()>,
}

/// A policy server whose connections idle out after 1 s (the idle-timeout test's).
async fn start(extra: &str) -> (Running, Arc<Engine>) {
    start_idle(extra, 1).await
}

async fn start_idle(extra: &str, idle_secs: u64) -> (Running, Arc<Engine>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mailfleet.toml");
    let text = format!(
        "data_dir = \"data\"\n[policy]\nidle_timeout_secs = {idle_secs}\n{extra}\n\
         [[policy.quota]]\nfor = \"limited@example.com\"\nmessages = 2\n\
         [[policy.quota]]\nfor = \"strict@example.com\"\nmessages = 1\naction = \"reject\"\n\
         [[policy.quota]]\nfor = \"patient@example.com\"\nmessages = 1\naction = \"defer_if_permit\"\n"
    );
    let config = mailfleet_core::Config::parse(&text, &path).unwrap();
    let (engine, _breaches) = mailfleet_policy::service::engine(&config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, shutdown) = mailfleet_core::shutdown::Shutdown::new();
    let served = tokio::spawn(mailfleet_policy::server::serve(
        listener,
        engine.clone(),
        shutdown,
    ));
    (
        Running {
            addr,
            _dir: dir,
            stop,
            served,
        },
        engine,
    )
}

/// A request as Postfix sends it; `extra` is one more (unknown) attribute line, or empty.
fn request(state: &str, sasl: &str, extra: &str) -> String {
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!("{extra}\n")
    };
    format!(
        "request=smtpd_access_policy\nprotocol_state={state}\nprotocol_name=ESMTP\n\
         client_address=127.0.0.1\nsasl_username={sasl}\nsender={sasl}\n\
         recipient=bob@example.com\nrecipient_count=3\nsize=1000\nqueue_id=ABC\n{extra}\n"
    )
}

/// Sends raw bytes and reads the answer: the reply text, or `None` if the server closed.
async fn exchange(c: &mut BufReader<TcpStream>, bytes: &[u8]) -> Option<String> {
    c.get_mut().write_all(bytes).await.ok()?;
    let mut reply = String::new();
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(5), c.read_line(&mut line))
            .await
            .expect("an answer or a close within 5 s")
            .ok()?;
        if n == 0 {
            return None;
        }
        if line == "\n" {
            return Some(reply);
        }
        reply.push_str(&line);
    }
}

async fn connect(addr: std::net::SocketAddr) -> BufReader<TcpStream> {
    BufReader::new(TcpStream::connect(addr).await.unwrap())
}

#[tokio::test]
async fn many_requests_on_one_connection_and_hold_over_quota() {
    let (s, _) = start("").await;
    let mut c = connect(s.addr).await;
    for i in 0..3 {
        let r = exchange(
            &mut c,
            request("RCPT", "limited@example.com", &format!("x{i}=1")).as_bytes(),
        )
        .await
        .unwrap();
        assert_eq!(r, "action=DUNNO\n");
    }
    let mut answers = Vec::new();
    for i in 0..3 {
        let q = format!("q{i}=1");
        answers.push(
            exchange(
                &mut c,
                request("END-OF-MESSAGE", "limited@example.com", &q).as_bytes(),
            )
            .await
            .unwrap(),
        );
    }
    assert_eq!(answers[..2], ["action=DUNNO\n", "action=DUNNO\n"]);
    assert!(answers[2].starts_with("action=HOLD "), "{}", answers[2]);
    // Someone else is not limited.
    let r = exchange(
        &mut c,
        request("END-OF-MESSAGE", "other@example.com", "").as_bytes(),
    )
    .await;
    assert_eq!(r.as_deref(), Some("action=DUNNO\n"));
}

#[tokio::test]
async fn malformed_input_closes_only_that_connection() {
    let (s, _) = start("").await;
    let long = format!(
        "request=smtpd_access_policy\nsender={}\n\n",
        "a".repeat(10_000)
    );
    let junk: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let cases: [(&str, Vec<u8>); 4] = [
        ("an over-long line", long.into_bytes()),
        (
            "no request=",
            b"protocol_state=RCPT\nsender=a@b\n\n".to_vec(),
        ),
        ("binary junk", [junk.as_slice(), b"\n\n"].concat()),
        (
            "a line without =",
            b"request=smtpd_access_policy\nHELLO\n\n".to_vec(),
        ),
    ];
    for (what, bytes) in cases {
        let mut bad = connect(s.addr).await;
        assert_eq!(exchange(&mut bad, &bytes).await, None, "{what}: answered");
        // The server still answers others.
        let mut good = connect(s.addr).await;
        let r = exchange(&mut good, request("RCPT", "a@example.com", "").as_bytes()).await;
        assert_eq!(r.as_deref(), Some("action=DUNNO\n"), "after {what}");
    }
}

#[tokio::test]
async fn a_client_that_never_finishes_stalls_nobody_and_times_out() {
    let (s, _) = start("").await;
    let mut stuck = connect(s.addr).await;
    stuck
        .get_mut()
        .write_all(b"request=smtpd_access_policy\nsender=slow@example.com")
        .await
        .unwrap();
    let mut good = connect(s.addr).await;
    let r = exchange(&mut good, request("RCPT", "a@example.com", "").as_bytes()).await;
    assert_eq!(r.as_deref(), Some("action=DUNNO\n"));
    // idle_timeout_secs = 1: the stuck client is closed, without an answer.
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), stuck.read_to_end(&mut rest))
        .await
        .expect("closed by the idle timeout")
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_connections_at_once() {
    // Opening 2000 connections one by one takes seconds on a loaded machine: the first ones
    // must not idle out before their request (Postfix keeps its own for 100 s).
    let (s, _) = start_idle("", 100).await;
    let mut conns = Vec::new();
    for _ in 0..2000 {
        conns.push(connect(s.addr).await);
    }
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            tokio::spawn(async move {
                let who = format!("user{i}@example.com");
                exchange(&mut c, request("END-OF-MESSAGE", &who, "").as_bytes()).await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().as_deref(), Some("action=DUNNO\n"));
    }
}

#[tokio::test]
async fn reject_and_defer_rules_and_a_reset() {
    let (s, engine) = start("").await;
    let mut c = connect(s.addr).await;
    let eom = |who: &str| request("END-OF-MESSAGE", who, "");
    for (who, verb) in [
        ("strict@example.com", "action=REJECT 5.7.1"),
        ("patient@example.com", "action=DEFER_IF_PERMIT 4.7.1"),
    ] {
        assert_eq!(
            exchange(&mut c, eom(who).as_bytes()).await.as_deref(),
            Some("action=DUNNO\n")
        );
        let r = exchange(&mut c, eom(who).as_bytes()).await.unwrap();
        assert!(r.starts_with(verb), "{who}: {r}");
    }
    // Nothing was held for them: held mail is only for the hold action.
    assert!(engine.counters().held(None).await.unwrap().is_empty());
    engine.counters().reset("strict@example.com").await.unwrap();
    let r = exchange(&mut c, eom("strict@example.com").as_bytes()).await;
    assert_eq!(
        r.as_deref(),
        Some("action=DUNNO\n"),
        "a reset account starts over"
    );
}

#[tokio::test]
async fn shutdown_answers_the_request_in_flight_then_stops() {
    let (r, _) = start("").await;
    let mut busy = BufReader::new(TcpStream::connect(r.addr).await.unwrap());
    let mut idle = BufReader::new(TcpStream::connect(r.addr).await.unwrap());
    assert!(
        exchange(&mut idle, request("RCPT", "a@example.com", "").as_bytes())
            .await
            .is_some()
    );
    // Half a request is on its way when the shutdown comes.
    let req = request("END-OF-MESSAGE", "a@example.com", "");
    let (first, rest) = req.split_at(40);
    busy.get_mut().write_all(first.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    r.stop.fire();
    let answer = exchange(&mut busy, rest.as_bytes()).await;
    assert!(
        answer.as_deref().is_some_and(|a| a.starts_with("action=")),
        "the request in flight was answered: {answer:?}"
    );
    // Between requests a connection is closed; the server returns well within its grace.
    assert_eq!(
        exchange(&mut idle, request("RCPT", "a@example.com", "").as_bytes()).await,
        None
    );
    tokio::time::timeout(mailfleet_core::shutdown::GRACE, r.served)
        .await
        .expect("the server stopped within its grace")
        .unwrap();
    assert!(TcpStream::connect(r.addr).await.is_err(), "still accepting");
}

//! One shutdown: the long-running commands stop on SIGTERM and on SIGINT and exit 0 (what is
//! in flight is finished within the grace: `crates/policy/tests/server.rs`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

/// Sends `signal` to the child and waits for it to exit: its code and how long it took.
fn stop(child: &mut std::process::Child, signal: Signal) -> (Option<i32>, Duration) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let sent = Instant::now();
    nix::sys::signal::kill(pid, signal).unwrap();
    // Nothing is in flight here, so nothing to wait for within the grace: the product stops
    // at once. Margin: 3 s for a loaded machine.
    let limit = Duration::from_secs(3);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return (st.code(), sent.elapsed());
        }
        assert!(
            sent.elapsed() < limit,
            "still running {limit:?} after {signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn policy_serve_and_monitor_stop_on_sigterm_and_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let ports = mailfleet_stack::ports::free_ports("127.0.0.1", 2);
    let config = dir.path().join("mailfleet.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"data\"\n[policy]\nblock_refresh_secs = 3600\n\
             [monitor]\ninterval_secs = 3600\nlisten = \"127.0.0.1:{}\"\n",
            ports[1]
        ),
    )
    .unwrap();
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        let mut server = crate::common::policy_serve(&config, ports[0], &dir.path().join("p.log"));
        let (code, took) = stop(&mut server.0, signal);
        assert_eq!(code, Some(0), "policy serve after {signal} ({took:?})");
        let mut monitor = crate::common::ChildGuard(
            Command::new(env!("CARGO_BIN_EXE_mailfleet"))
                .args(["--config", config.to_str().unwrap(), "monitor"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        // /metrics answers: the monitor is up (its first round runs at once).
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", ports[1])).is_err() {
            assert!(
                Instant::now() < deadline,
                "the monitor never served /metrics"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let (code, took) = stop(&mut monitor.0, signal);
        assert_eq!(code, Some(0), "monitor after {signal} ({took:?})");
    }
}

//! `mailfleet demo up|status|down` as a user runs them: a second `up` is a no-op, `down`
//! stops exactly the daemons that were started.

use std::path::Path;

use crate::common::{mailfleet, mailfleet_ok};

/// A port base whose whole range (base .. base+1995) is free now: above the testkit's ports
/// (20000..32000, which a stack started meanwhile may take) and different for each call in
/// this process (two demos started at once would otherwise find the same free base).
pub(crate) fn free_port_base() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // 32000 + 13 * 2000 + 1995 stays below 60000.
    let slots = 13u16;
    let seed = (std::process::id() % u32::from(slots)) as u16;
    (0..slots)
        .map(|_| 32000 + (seed + NEXT.fetch_add(1, Ordering::Relaxed)) % slots * 2000)
        .find(|&b| {
            mailfleet_stack::StackPorts::from_base(b).is_some_and(|p| {
                p.all().iter().all(|(service, port)| {
                    // Each server's daemons on its own address.
                    let server = service.split(' ').next().unwrap_or("");
                    let host = mailfleet_stack::layout::daemon_host("127.0.0.1", server);
                    std::net::TcpListener::bind((host.as_str(), *port)).is_ok()
                })
            })
        })
        .expect("a free port range")
}

fn pids(base: &Path) -> Vec<i32> {
    [
        "mx1/queue/pid/master.pid",
        "store1/run/master.pid",
        "store2/run/master.pid",
        "ldap1/slapd.pid",
        "redis/redis.pid",
    ]
    .iter()
    .filter_map(|f| std::fs::read_to_string(base.join(f)).ok())
    .filter_map(|s| s.trim().parse().ok())
    .collect()
}

#[test]
fn demo_up_status_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().join("stack");
    let b = base.to_str().expect("utf-8");
    let config = dir.path().join("mailfleet.toml");
    let c = config.to_str().expect("utf-8");
    let port_base = free_port_base().to_string();

    let out = mailfleet_ok(
        &config,
        &["demo", "up", "--base", b, "--port-base", &port_base],
    );
    assert!(out.contains("demo stack up"), "{out}");
    let _guard = Down(base.clone());
    assert!(config.exists(), "demo up did not write the config path");
    let started = pids(&base);
    assert_eq!(started.len(), 5, "five PID files");

    // The config it wrote describes the stack: the accounts are there.
    let list = mailfleet_ok(&config, &["accounts", "list"]);
    assert!(
        list.contains("alice@example.com") && list.contains("7 accounts"),
        "{list}"
    );
    mailfleet_ok(&config, &["config", "check"]);
    mailfleet_ok(&config, &["demo", "status", "--base", b]);

    // A second up on the same base starts nothing.
    let again = mailfleet_ok(&config, &["demo", "up", "--base", b]);
    assert!(again.contains("already running"), "{again}");
    assert_eq!(pids(&base), started);

    // The daemon with the dashboard beside it: its address and the login, never the password.
    let web = mailfleet_stack::ports::free_ports("127.0.0.1", 1)[0];
    let listen = format!("127.0.0.1:{web}");
    let out = mailfleet_ok(
        &config,
        &["demo", "serve", "--base", b, "--listen", &listen],
    );
    assert!(
        out.contains(&format!("dashboard: http://{listen}/")),
        "{out}"
    );
    assert!(out.contains("login: admin, the password in "), "{out}");
    let pw_file = base.join("operator-password");
    let password = std::fs::read_to_string(&pw_file)
        .unwrap()
        .trim()
        .to_string();
    assert!(!out.contains(&password), "the password was printed");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&pw_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let (r, _) = crate::serve_web::login(web, "admin", &password);
    assert_eq!(r.status, 303, "the demo's login failed");
    assert!(r.cookie().is_some());
    let serve_pid: i32 = std::fs::read_to_string(base.join("serve.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    let down = mailfleet(&["--config", c, "demo", "down", "--base", b]);
    assert!(down.status.success());
    for pid in started {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .map(|(_, r)| r.trim_start().chars().next())
            .unwrap_or(None);
        assert!(
            matches!(state, None | Some('Z')),
            "pid {pid} still runs after down"
        );
    }
    assert!(
        !std::path::Path::new(&format!("/proc/{serve_pid}/exe")).exists(),
        "mailfleet serve still runs after down"
    );
    let status = mailfleet(&["--config", c, "demo", "status", "--base", b]);
    assert!(
        !status.status.success(),
        "status exits non-zero when the stack is down"
    );
}

#[test]
fn demo_up_refuses_non_loopback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = mailfleet(&[
        "demo",
        "up",
        "--base",
        dir.path().to_str().expect("utf-8"),
        "--host",
        "10.1.2.3",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

/// Stops the stack if the test fails half-way.
pub(crate) struct Down(pub(crate) std::path::PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = mailfleet_stack::down(&self.0);
    }
}

#[test]
fn demo_up_refuses_ports_in_use_and_starts_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().join("stack");
    let port_base = free_port_base();
    let smtp = mailfleet_stack::StackPorts::from_base(port_base)
        .expect("ports")
        .smtp;
    let mx1 = mailfleet_stack::layout::daemon_host("127.0.0.1", "mx1");
    let _squatter = std::net::TcpListener::bind((mx1.as_str(), smtp)).expect("bind");
    let out = mailfleet(&[
        "--config",
        dir.path().join("mailfleet.toml").to_str().expect("utf-8"),
        "demo",
        "up",
        "--base",
        base.to_str().expect("utf-8"),
        "--port-base",
        &port_base.to_string(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{smtp} (mx1 smtp)")) && err.contains("--port-base"),
        "{err}"
    );
    assert!(pids(&base).is_empty(), "nothing was started");
}

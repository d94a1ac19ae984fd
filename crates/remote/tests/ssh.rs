//! The reach against real OpenSSH servers on loopback addresses of their own: arguments
//! arrive verbatim, one handshake serves many commands, output is bounded, host keys are
//! checked strictly, and a frozen server is an error within the deadline that holds up no
//! other server.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::Path;
use std::time::{Duration, Instant};

use mailfleet_remote::{Access, Cmd, Reach, RemoteErrorKind, SshTarget};
use mailfleet_stack::sshd::{SshFiles, Sshd};

struct Servers {
    _dir: tempfile::TempDir,
    files: SshFiles,
    sshds: Vec<Sshd>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for s in &self.sshds {
            let _ = s.stop();
        }
    }
}

/// `n` sshds, each on its own loopback address, one port for all.
fn servers(n: usize) -> Servers {
    let dir = tempfile::tempdir().unwrap();
    let files = SshFiles::new(dir.path());
    files.ensure().unwrap();
    let port = mailfleet_stack::ports::free_ports("127.0.0.1", 1)[0];
    // Addresses apart from the demo's (127.0.0.1x-3x) and per test process.
    let third = 100 + (std::process::id() % 100) as u8;
    let sshds: Vec<Sshd> = (0..n)
        .map(|i| {
            let host = format!("127.0.{third}.{}", 10 + i);
            Sshd::new(&dir.path().join(format!("s{i}")), &host, port)
        })
        .collect();
    for s in &sshds {
        s.configure(&files).unwrap();
    }
    let hosts: Vec<_> = sshds
        .iter()
        .map(|s| (s.host.clone(), s.port, s.host_key()))
        .collect();
    files.write_known_hosts(&hosts).unwrap();
    for s in &sshds {
        s.start().unwrap();
    }
    Servers {
        _dir: dir,
        files,
        sshds,
    }
}

fn access(s: &Sshd, files: &SshFiles, known_hosts: &Path) -> Access {
    let mut t = SshTarget::parse(&format!("root@{}:{}", s.host, s.port)).unwrap();
    t.identity_file = Some(files.operator_key());
    t.known_hosts = Some(known_hosts.to_path_buf());
    Access::Ssh(t)
}

fn fingerprint(public_key: &Path) -> String {
    let out = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(public_key)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

/// The PID and every descendant of it, from /proc.
fn with_descendants(pid: i32) -> Vec<i32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let parent = all[i];
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().nth(1))
                .and_then(|x| x.parse::<i32>().ok());
            if ppid == Some(parent) {
                all.push(p);
            }
        }
        i += 1;
    }
    all
}

#[tokio::test]
async fn arguments_arrive_verbatim_over_one_connection_and_stdin_and_exit_codes_come_back() {
    let s = servers(1);
    let a = access(&s.sshds[0], &s.files, &s.files.known_hosts());
    let reach = Reach::new();
    let awkward = [
        "two words",
        "$(touch /tmp/mailfleet-pwned)",
        "a;b",
        "'q'",
        "*",
        "",
    ];
    let mut argv = vec!["printf".to_string(), "[%s]\\n".to_string()];
    argv.extend(awkward.iter().map(|x| x.to_string()));
    let out = reach.check("s0", &a, &Cmd::new(argv)).await.unwrap();
    let want: String = awkward.iter().map(|x| format!("[{x}]\n")).collect();
    assert_eq!(out.stdout_text(), want);
    assert!(!Path::new("/tmp/mailfleet-pwned").exists());
    for _ in 0..20 {
        let out = reach
            .run(
                "s0",
                &a,
                &Cmd::new(["sh", "-c", "cat; exit 3"]).stdin("fed\n"),
            )
            .await
            .unwrap();
        assert_eq!((out.code, out.stdout_text().as_str()), (Some(3), "fed\n"));
    }
    assert_eq!(reach.handshakes(), 1, "commands must share one connection");
    let e = reach
        .check("s0", &a, &Cmd::new(["false"]))
        .await
        .unwrap_err();
    assert!(
        matches!(e.kind, RemoteErrorKind::Failed { .. })
            && e.to_string().starts_with("s0: false: exit 1"),
        "{e}"
    );
    let e = reach
        .run("s0", &a, &Cmd::new(["no-such-program-here"]))
        .await
        .unwrap_err();
    assert!(matches!(e.kind, RemoteErrorKind::Spawn { .. }), "{e}");
    // The same commands locally.
    let out = reach
        .run(
            "here",
            &Access::Local,
            &Cmd::new(["sh", "-c", "cat; exit 3"]).stdin("fed\n"),
        )
        .await
        .unwrap();
    assert_eq!((out.code, out.stdout_text().as_str()), (Some(3), "fed\n"));
}

#[tokio::test]
async fn a_hundred_megabytes_of_output_are_counted_not_kept() {
    let s = servers(1);
    let a = access(&s.sshds[0], &s.files, &s.files.known_hosts());
    let reach = Reach::new();
    for access in [a, Access::Local] {
        let out = reach
            .run(
                "s0",
                &access,
                &Cmd::new(["head", "-c", "100000000", "/dev/zero"]).capture(1 << 20),
            )
            .await
            .unwrap();
        assert!(out.success());
        assert_eq!(out.stdout.len(), 1 << 20);
        assert_eq!(out.stdout_dropped, 100_000_000 - (1 << 20));
    }
}

#[tokio::test]
async fn unknown_and_changed_host_keys_are_refused_with_the_fingerprint() {
    let s = servers(2);
    let reach = Reach::new();
    let real = fingerprint(&s.sshds[0].host_key().with_extension("pub"));
    // Unknown: a known_hosts without it.
    let empty = s.files.dir.join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let e = reach
        .run(
            "s0",
            &access(&s.sshds[0], &s.files, &empty),
            &Cmd::new(["true"]),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e.kind, RemoteErrorKind::UnknownHostKey { .. }),
        "{e}"
    );
    let msg = e.to_string();
    assert!(msg.starts_with("s0: ") && msg.contains(&real), "{msg}");
    assert!(!e.is_transient());
    // Changed: the name in known_hosts with another server's key.
    let other = std::fs::read_to_string(s.sshds[1].host_key().with_extension("pub")).unwrap();
    let mut f = other.split_whitespace();
    let wrong = s.files.dir.join("wrong_known_hosts");
    std::fs::write(
        &wrong,
        format!(
            "[{}]:{} {} {}\n",
            s.sshds[0].host,
            s.sshds[0].port,
            f.next().unwrap(),
            f.next().unwrap()
        ),
    )
    .unwrap();
    let e = reach
        .run(
            "s0",
            &access(&s.sshds[0], &s.files, &wrong),
            &Cmd::new(["true"]),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e.kind, RemoteErrorKind::ChangedHostKey { .. }),
        "{e}"
    );
    assert!(e.to_string().contains(&real), "{e}");
    assert_eq!(reach.handshakes(), 0);
}

#[tokio::test]
async fn a_frozen_server_times_out_by_name_and_holds_up_no_other() {
    let s = servers(2);
    let kh = s.files.known_hosts();
    let (a0, a1) = (
        access(&s.sshds[0], &s.files, &kh),
        access(&s.sshds[1], &s.files, &kh),
    );
    let reach = Reach::new();
    for (name, a) in [("s0", &a0), ("s1", &a1)] {
        reach.check(name, a, &Cmd::new(["true"])).await.unwrap();
    }
    // Its listener and the process serving our open connection, stopped.
    let pid = mailfleet_stack::process::read_pid(&s.sshds[0].pid_file()).unwrap();
    let frozen = with_descendants(pid);
    for p in &frozen {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p), nix::sys::signal::SIGSTOP).unwrap();
    }
    let deadline = Duration::from_secs(2);
    let t = Instant::now();
    let quick = Cmd::new(["true"]).deadline(deadline);
    let (r0, r1) = tokio::join!(reach.run("s0", &a0, &quick), async {
        let r = reach
            .run("s1", &a1, &Cmd::new(["true"]).deadline(deadline))
            .await;
        (r, t.elapsed())
    });
    let took = t.elapsed();
    for p in &frozen {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p), nix::sys::signal::SIGCONT);
    }
    let e = r0.unwrap_err();
    assert!(e.is_timeout() && e.to_string().starts_with("s0: "), "{e}");
    // The deadline plus a margin for a loaded machine.
    assert!(took < deadline + Duration::from_secs(3), "{took:?}");
    let (r1, t1) = r1;
    assert!(r1.unwrap().success());
    assert!(
        t1 < Duration::from_secs(1),
        "the other server waited {t1:?}"
    );
    // Thawed, it answers again, over the same connection: a command's timeout does not end
    // it.
    reach
        .check(
            "s0",
            &a0,
            &Cmd::new(["true"]).deadline(Duration::from_secs(10)),
        )
        .await
        .unwrap();
    assert_eq!(reach.handshakes(), 2);
}

/// The PIDs of ssh master processes (`-M`) for this server (tests share addresses, not ports).
fn masters_of(sshd: &Sshd) -> Vec<i32> {
    let (host, port) = (sshd.host.as_bytes(), sshd.port.to_string());
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.first().is_some_and(|a| a.ends_with(b"ssh"))
            && args.contains(&b"-M".as_slice())
            && args.contains(&host)
            && args.contains(&port.as_bytes())
        {
            found.push(p);
        }
    }
    found
}

#[tokio::test]
async fn a_connection_that_died_is_made_again_for_the_next_command() {
    let s = servers(1);
    let kh = s.files.known_hosts();
    let a = access(&s.sshds[0], &s.files, &kh);
    let reach = Reach::new();
    reach.check("s0", &a, &Cmd::new(["true"])).await.unwrap();
    assert_eq!(masters_of(&s.sshds[0]).len(), 1);
    // The server side of our connection dies (the listener stays): the master ends.
    let pid = mailfleet_stack::process::read_pid(&s.sshds[0].pid_file()).unwrap();
    for p in with_descendants(pid).into_iter().filter(|p| *p != pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), nix::sys::signal::SIGKILL);
    }
    let end = Instant::now() + Duration::from_secs(20);
    while !masters_of(&s.sshds[0]).is_empty() {
        assert!(Instant::now() < end, "the master never noticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The kept connection is gone: the command runs over a new one, not failing once first.
    let out = reach
        .check("s0", &a, &Cmd::new(["echo", "again"]))
        .await
        .unwrap();
    assert_eq!(out.stdout_text().trim(), "again");
    assert_eq!(reach.handshakes(), 2);
}

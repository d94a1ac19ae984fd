//! A hung mount on a server reached over SSH: the server's sshd runs in a mount namespace of
//! its own with the hanging FUSE filesystem of [`crate::hung_mount`] mounted, so every command
//! run through it sees the mount, and nothing else does. The probe reads that server's
//! resources on it: the mount is CRITICAL within the deadline, the server's other resources
//! and another server's all come back in the same round, and the next round does not start
//! another stuck `stat` behind the first.

use std::ffi::OsString;
use std::process::Command;
use std::time::{Duration, Instant};

use mailfleet_stack::sshd::{SshFiles, Sshd};
use serde_json::Value;

/// Mounts the hanging filesystem in the namespace `unshare` made, waits for it, records its
/// PID, then runs the rest of the arguments (sshd, which daemonises and stays in there).
const WRAPPER: &str = r#"
set -u
dir="$1"; shift
mkdir -p "$dir/mnt"
/usr/bin/python3 "$dir/hangfs.py" "$dir/mnt" 2>"$dir/hangfs.log" &
echo $! > "$dir/hangfs.pid"
for i in $(seq 1 500); do grep -q " $dir/mnt fuse.hangfs " /proc/self/mounts && break; sleep 0.02; done
grep -q " $dir/mnt fuse.hangfs " /proc/self/mounts || { echo "hangfs did not mount: $(cat "$dir/hangfs.log")" >&2; exit 9; }
exec "$@"
"#;

/// Stops both sshds and the filesystem (by the PIDs this test started), so the stuck `stat`s
/// return and the namespace goes.
struct Cleanup {
    dir: tempfile::TempDir,
    sshds: Vec<Sshd>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for s in &self.sshds {
            let _ = s.stop();
        }
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("hangfs.pid")) {
            let _ = Command::new("kill").args(["-9", pid.trim()]).status();
        }
    }
}

fn probe(config: &std::path::Path) -> (Vec<Value>, Duration) {
    let started = Instant::now();
    let out = crate::common::mailfleet(&[
        "--config",
        config.to_str().unwrap(),
        "--json",
        "probe",
        "hung",
        "calm",
    ]);
    let took = started.elapsed();
    let outcomes: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "probe printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (outcomes, took)
}

fn find<'a>(outcomes: &'a [Value], server: &str, check: &str) -> &'a Value {
    outcomes
        .iter()
        .find(|o| o["server"] == server && o["check"] == check)
        .unwrap_or_else(|| panic!("no {server} {check} in {outcomes:#?}"))
}

#[test]
fn a_hung_mount_on_an_ssh_reached_server_is_critical_and_the_round_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("hangfs.py"), crate::hung_mount::HANGFS).unwrap();
    std::fs::write(d.join("wrap.sh"), WRAPPER).unwrap();
    let files = SshFiles::new(d);
    files.ensure().unwrap();
    let port = mailfleet_stack::ports::free_ports("127.0.0.1", 1)[0];
    // Addresses apart from the demo's and the remote crate's tests', per test process.
    let third = 200 + (std::process::id() % 50) as u8;
    let hung = Sshd::new(&d.join("hung"), &format!("127.0.{third}.40"), port);
    let calm = Sshd::new(&d.join("calm"), &format!("127.0.{third}.41"), port);
    for s in [&hung, &calm] {
        s.configure(&files).unwrap();
    }
    files
        .write_known_hosts(&[
            (hung.host.clone(), port, hung.host_key()),
            (calm.host.clone(), port, calm.host_key()),
        ])
        .unwrap();
    let wrapper: Vec<OsString> = vec![
        "unshare".into(),
        "--mount".into(),
        "--propagation".into(),
        "private".into(),
        "sh".into(),
        d.join("wrap.sh").into(),
        d.into(),
    ];
    hung.start_under(&wrapper).unwrap();
    calm.start().unwrap();
    let guard = Cleanup {
        dir,
        sshds: vec![hung.clone(), calm.clone()],
    };
    let d = guard.dir.path();
    let config = d.join("mailfleet.toml");
    let server = |name: &str, s: &Sshd| {
        format!(
            "[[server]]\nname = {name:?}\nroles = [\"proxy\"]\nhost = {h:?}\nssh = \"root@{h}:{p}\"\n",
            h = s.host,
            p = s.port
        )
    };
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\n[probe]\ntimeout_secs = 2\n[ssh]\nidentity_file = {key:?}\nknown_hosts = {kh:?}\n{}{}",
            server("hung", &hung),
            server("calm", &calm),
            data = d.join("data"),
            key = files.operator_key(),
            kh = files.known_hosts(),
        ),
    )
    .unwrap();

    let (outcomes, took) = probe(&config);
    let mnt = format!("disk:{}", d.join("mnt").display());
    let stuck = find(&outcomes, "hung", &mnt);
    assert_eq!(stuck["state"], "CRITICAL", "{stuck:#}");
    assert!(
        stuck["message"]
            .as_str()
            .unwrap()
            .contains("no answer within 2.0 s"),
        "{stuck:#}"
    );
    // The same server's other resources, and the other server's, in the same round, each a
    // real reading (their state depends on how busy this machine is).
    for (server, check, reading) in [
        ("hung", "disk:/", "% used"),
        ("hung", "memory", "% used of"),
        ("hung", "cpu", "% busy"),
        ("calm", "disk:/", "% used"),
        ("calm", "memory", "% used of"),
    ] {
        let o = find(&outcomes, server, check);
        assert!(o["message"].as_str().unwrap().contains(reading), "{o:#}");
    }
    // Only the hung server sees the mount.
    assert!(
        !outcomes
            .iter()
            .any(|o| o["server"] == "calm" && o["check"] == mnt.as_str()),
        "{outcomes:#?}"
    );
    // The product's deadline: 2 s for the mount. Margin: 3 s for two SSH handshakes, the CPU
    // sample and a loaded machine.
    assert!(took < Duration::from_secs(2 + 3), "the round took {took:?}");

    // Next round: the first stat is still stuck on the server; it is reported at once and
    // no second one is started behind it.
    let (outcomes, _) = probe(&config);
    let stuck = find(&outcomes, "hung", &mnt);
    assert_eq!(stuck["state"], "CRITICAL", "{stuck:#}");
    assert!(
        stuck["message"].as_str().unwrap().contains("still"),
        "{stuck:#}"
    );
    drop(guard);
}

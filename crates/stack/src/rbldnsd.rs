//! A real DNSBL on loopback: rbldnsd serving ip4set zones from files, for the policy
//! server's DNSBL stage. It refuses to run as root, so it runs as `nobody`.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{StackError, io_err};

/// rbldnsd running in the foreground, stopped (by its PID) on drop.
pub struct Rbldnsd {
    child: Child,
    /// Its UDP port on 127.0.0.1.
    pub port: u16,
}

impl Drop for Rbldnsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A DNS query for `name` type A, id 0x4d46.
fn query(name: &str) -> Vec<u8> {
    let mut q = vec![0x4d, 0x46, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// Whether a DNS server answers on 127.0.0.1:`port`.
fn answers(port: u16, zone: &str) -> bool {
    let Ok(s) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    if s.send_to(&query(&format!("2.0.0.127.{zone}")), ("127.0.0.1", port))
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 512];
    matches!(s.recv(&mut buf), Ok(n) if n >= 12 && buf[..2] == [0x4d, 0x46])
}

/// Serves each `(zone, listed addresses or CIDR ranges)` from files under `dir`.
pub fn start(dir: &Path, port: u16, zones: &[(&str, &[&str])]) -> Result<Rbldnsd, StackError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut specs = Vec::new();
    for (zone, entries) in zones {
        let file = format!("{zone}.txt");
        let path = dir.join(&file);
        let mut text = String::from(":127.0.0.2:Listed, see http://dnsbl.test/$\n");
        for e in *entries {
            text.push_str(e);
            text.push('\n');
        }
        std::fs::write(&path, text).map_err(io_err(&path))?;
        specs.push(format!("{zone}:ip4set:{file}"));
    }
    // It reads its files as nobody.
    for p in std::iter::once(dir.to_path_buf()).chain(
        std::fs::read_dir(dir)
            .map_err(io_err(dir))?
            .flatten()
            .map(|e| e.path()),
    ) {
        let mode = if p.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .map_err(io_err(&p))?;
    }
    let log = std::fs::File::create(dir.join("rbldnsd.log")).map_err(io_err(dir))?;
    let child = Command::new("rbldnsd")
        .args([
            "-u",
            "nobody",
            "-n",
            "-q",
            "-b",
            &format!("127.0.0.1/{port}"),
            "-w",
        ])
        .arg(dir)
        .args(&specs)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| StackError::Command {
            command: "rbldnsd (apt-get install rbldnsd)".into(),
            message: e.to_string(),
        })?;
    let server = Rbldnsd { child, port };
    let zone = zones.first().map_or("bl.test", |z| z.0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !answers(port, zone) {
        if Instant::now() > deadline {
            return Err(StackError::Command {
                command: "rbldnsd".into(),
                message: format!(
                    "no answer on port {port}: {}",
                    std::fs::read_to_string(dir.join("rbldnsd.log")).unwrap_or_default()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(server)
}

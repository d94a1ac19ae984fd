//! `mailfleet serve` beside the demo fleet: the monitor and the dashboard on loopback, one
//! operator, started detached with its PID file in the stack's base (so `demo down` stops it
//! by that PID, first, before the servers it watches).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::StackError;

/// Where the daemon's PID is kept.
pub fn pid_file(base: &Path) -> PathBuf {
    base.join("serve.pid")
}

/// Adds `[serve]` (monitor and dashboard on `listen`, operator `admin` with `password_hash`)
/// to the demo's config at `config`, unless it has one, and starts `exe serve` with it; its
/// PID. Waits until the dashboard answers.
pub fn start(
    base: &Path,
    config: &Path,
    exe: &Path,
    listen: SocketAddr,
    password_hash: &str,
) -> Result<u32, StackError> {
    let io = |what: &str, e: std::io::Error| StackError::State(format!("{what}: {e}"));
    let text = std::fs::read_to_string(config).map_err(|e| io(&config.display().to_string(), e))?;
    if !text.contains("\n[serve]\n") {
        let section = format!(
            "\n[serve]\n# `mailfleet serve`: the monitor, the dashboard and its moves and upgrades, started by `demo serve`.\n\
             parts = [\"monitor\", \"web\", \"runs\"]\nlisten = \"{listen}\"\n\
             [[serve.operators]]\nname = \"admin\"\npassword_hash = \"{password_hash}\"\n"
        );
        std::fs::write(config, text + &section)
            .map_err(|e| io(&config.display().to_string(), e))?;
    }
    let pid_path = pid_file(base);
    if let Some(pid) = crate::process::read_pid(&pid_path)
        && crate::process::is_running(pid)
    {
        return Err(StackError::State(format!(
            "mailfleet serve already runs (PID {pid}, {})",
            pid_path.display()
        )));
    }
    let log_path = base.join("serve.log");
    let log =
        std::fs::File::create(&log_path).map_err(|e| io(&log_path.display().to_string(), e))?;
    let err = log.try_clone().map_err(|e| io("serve.log", e))?;
    let child = {
        use std::os::unix::process::CommandExt;
        Command::new(exe)
            .arg("--config")
            .arg(config)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            // Its own process group: a Ctrl-C in the shell that ran `demo serve` leaves it.
            .process_group(0)
            .spawn()
            .map_err(|e| io(&format!("starting {}", exe.display()), e))?
    };
    let pid = child.id();
    std::fs::write(&pid_path, format!("{pid}\n"))
        .map_err(|e| io(&pid_path.display().to_string(), e))?;
    let up = crate::process::wait_until(Duration::from_secs(30), || {
        std::net::TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_ok()
    });
    if !up {
        let said = std::fs::read_to_string(&log_path).unwrap_or_default();
        return Err(StackError::State(format!(
            "mailfleet serve did not answer on {listen} within 30 s: {}",
            said.lines().last().unwrap_or("(nothing in serve.log)")
        )));
    }
    Ok(pid)
}

/// Stops the demo's `mailfleet serve`, if it runs; its PID.
pub fn stop(base: &Path) -> Result<Option<i32>, StackError> {
    crate::process::stop(&pid_file(base), "mailfleet", Duration::from_secs(15))
}

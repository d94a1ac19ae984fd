//! Running commands, and stopping daemons by the PIDs they recorded, never by name.

use std::io::{Read, Seek};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::{StackError, io_err};

/// How often waits poll their condition.
const POLL: Duration = Duration::from_millis(25);

/// Runs a command to completion, with no input. Its output goes to a temporary file, not
/// a pipe: daemons it starts inherit the descriptors, and a pipe would never reach EOF.
pub fn run(cmd: &mut Command) -> Result<(), StackError> {
    let command = format!("{cmd:?}").replace('"', "");
    let fail = |message: String| StackError::Command {
        command: command.clone(),
        message,
    };
    let out = tempfile::tempfile().map_err(|e| fail(e.to_string()))?;
    let err = out.try_clone().map_err(|e| fail(e.to_string()))?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().map_err(|e| fail(e.to_string()))?)
        .stderr(err)
        .status()
        .map_err(|e| fail(e.to_string()))?;
    if status.success() {
        return Ok(());
    }
    let mut text = String::new();
    let mut out = out;
    let _ = out.seek(std::io::SeekFrom::Start(0));
    let _ = out.read_to_string(&mut text);
    Err(fail(format!("{status}: {}", text.trim())))
}

/// Starts a foreground daemon with stderr and stdout appended to `log`, in its own process
/// group so a terminal's Ctrl-C on mailfleet does not reach it.
pub fn spawn(cmd: &mut Command, log: &Path) -> Result<std::process::Child, StackError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io_err(log))?;
    let err = file.try_clone().map_err(io_err(log))?;
    cmd.stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| StackError::Command {
            command: format!("{cmd:?}"),
            message: e.to_string(),
        })
}

/// The PID recorded in a PID file, if the file exists and holds one.
pub fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether the process runs; a zombie (state Z, waiting to be reaped) counts as stopped.
pub fn is_running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may itself hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// The process's command name, to check a PID file still names the daemon it was written by.
pub fn command_name(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Waits until `cond` holds or the deadline passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// Whether something accepts TCP connections on host:port.
pub fn listening(host: &str, port: u16) -> bool {
    let Ok(addr) = format!("{host}:{port}").parse() else {
        return false;
    };
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Waits for a daemon's port, failing early if its PID is gone.
pub fn wait_listening(
    service: &str,
    host: &str,
    port: u16,
    log: &Path,
    timeout: Duration,
) -> Result<(), StackError> {
    if wait_until(timeout, || listening(host, port)) {
        return Ok(());
    }
    Err(StackError::Timeout {
        service: service.into(),
        secs: timeout.as_secs(),
        detail: format!("nothing listens on {host}:{port}; see {}", log.display()),
    })
}

/// Stops the daemon whose PID file this is: SIGTERM, then SIGKILL after `grace`.
/// Returns the PID stopped, or `None` if it was not running. `expected` is the command
/// name the PID must have, so a stale PID file never gets another process killed.
pub fn stop(pid_file: &Path, expected: &str, grace: Duration) -> Result<Option<i32>, StackError> {
    let Some(pid) = read_pid(pid_file) else {
        return Ok(None);
    };
    if !is_running(pid) {
        return Ok(None);
    }
    match command_name(pid) {
        Some(name) if name.starts_with(expected) => {}
        other => {
            return Err(StackError::State(format!(
                "{}: PID {pid} is {:?}, not {expected}: left alone",
                pid_file.display(),
                other.unwrap_or_default()
            )));
        }
    }
    let target = Pid::from_raw(pid);
    let _ = kill(target, Signal::SIGTERM);
    if !wait_until(grace, || !is_running(pid)) {
        let _ = kill(target, Signal::SIGKILL);
        wait_until(Duration::from_secs(5), || !is_running(pid));
    }
    Ok(Some(pid))
}

//! A server's main daemon as its PID file names it, read on the server through its access:
//! the PID and that process's start time, so a restart (a new pair) is noticed.

use std::time::Duration;

use mailfleet_core::Server;
use mailfleet_remote::{Cmd, Reach};

/// Reads the PID file named by `$1`, then that process's `/proc/PID/stat`. Exit 3: no PID
/// file or no number in it; exit 4: no such process.
const SCRIPT: &str = r#"
read -r pid < "$1" 2>/dev/null || exit 3
case "$pid" in ''|*[!0-9]*) exit 3;; esac
echo "$pid"
cat "/proc/$pid/stat" 2>/dev/null || exit 4
"#;

/// What the PID file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Daemon {
    /// Running: its PID and start time (clock ticks since boot).
    Running(i32, u64),
    /// No PID file, or its process is gone.
    NotRunning,
}

/// The start time from `/proc/PID/stat` (field 22, after the command in parentheses).
fn start_time(stat: &str) -> Option<u64> {
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The daemon of `server` (which has a `pid_file`), within `timeout`; an error when the
/// server cannot be asked.
pub async fn daemon(reach: &Reach, server: &Server, timeout: Duration) -> Result<Daemon, String> {
    let Some(pid_file) = &server.pid_file else {
        return Err(format!("{}: no pid_file in the config", server.name));
    };
    let cmd = Cmd::new(vec![
        "sh".to_string(),
        "-c".into(),
        SCRIPT.into(),
        "mailfleet-daemon".into(),
        pid_file.display().to_string(),
    ])
    .deadline(timeout);
    let out = reach
        .run(&server.name, &server.access, &cmd)
        .await
        .map_err(|e| e.to_string())?;
    match out.code {
        Some(0) => {}
        Some(3 | 4) => return Ok(Daemon::NotRunning),
        _ => {
            return Err(format!(
                "{}: reading {}: {}",
                server.name,
                pid_file.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    let text = out.stdout_text();
    let (pid, stat) = text.split_once('\n').unwrap_or((&text, ""));
    match (pid.trim().parse(), start_time(stat)) {
        (Ok(pid), Some(start)) => Ok(Daemon::Running(pid, start)),
        _ => Err(format!(
            "{}: unreadable /proc stat for the PID in {}",
            server.name,
            pid_file.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_time_follows_a_command_with_spaces_and_parentheses() {
        let stat = "1234 (my (odd) daemon) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(start_time(stat), Some(987654));
        assert_eq!(start_time("garbage"), None);
    }
}

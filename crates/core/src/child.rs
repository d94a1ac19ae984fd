//! Waiting for a child process with a deadline: the one way mailfleet waits for the programs
//! it starts (hooks, workers, calls that may hang on a dead mount), so none can stall it.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// Waits until `child` exits or `deadline` passes; `None` when it is still running then (the
/// caller decides whether to kill it or leave it behind).
pub fn wait_until(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    // Short sleeps at first (most children end within milliseconds), then at most 20 ms.
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Whether process `pid` runs mailfleet now (a PID reused by another program does not): the
/// journals' test of whether the process that holds a move or an upgrade run is still there.
pub fn is_mailfleet(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("mailfleet"))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quick_child_is_reaped_and_a_slow_one_is_left_running() {
        let mut quick = std::process::Command::new("true").spawn().unwrap();
        let st = wait_until(&mut quick, Instant::now() + Duration::from_secs(10)).unwrap();
        assert!(st.is_some_and(|s| s.success()));
        let mut slow = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        let started = Instant::now();
        let st = wait_until(&mut slow, started + Duration::from_millis(100)).unwrap();
        assert!(st.is_none());
        assert!(started.elapsed() < Duration::from_secs(5));
        slow.kill().unwrap();
        slow.wait().unwrap();
    }
}

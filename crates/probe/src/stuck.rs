//! Running a command that may touch a hung filesystem. A syscall stuck on a dead NFS or FUSE
//! server cannot be interrupted, not even by SIGKILL, so such calls run in a child process:
//! past the deadline it is left behind (and reaped when it returns), and this process can
//! still exit. A target already stuck is not asked again until its child returns.

use std::collections::HashMap;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Children still stuck, by target (a mount point or a file).
static STUCK: Mutex<Option<HashMap<String, Child>>> = Mutex::new(None);

/// Why the command gave no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stuck {
    /// It did not finish in time (it is left running).
    Timeout(Duration),
    /// An earlier run on the same target is still stuck.
    StillStuck,
    /// It could not be started.
    Spawn(String),
}

impl std::fmt::Display for Stuck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stuck::Timeout(t) => {
                write!(f, "no answer within {:.1} s (hung mount?)", t.as_secs_f64())
            }
            Stuck::StillStuck => {
                f.write_str("still not answering (the previous check is still stuck)")
            }
            Stuck::Spawn(e) => write!(f, "cannot run the check: {e}"),
        }
    }
}

/// Runs `cmd` for `target` with a deadline; its output when it finished in time. Calls for
/// different targets wait at the same time: the table of stuck children is locked only to
/// look and to record, never for the wait.
pub fn run(target: &str, cmd: &mut Command, timeout: Duration) -> Result<Output, Stuck> {
    {
        let mut guard = STUCK.lock().unwrap_or_else(|e| e.into_inner());
        let stuck = guard.get_or_insert_with(HashMap::new);
        stuck.retain(|_, child| matches!(child.try_wait(), Ok(None)));
        if stuck.contains_key(target) {
            return Err(Stuck::StillStuck);
        }
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Stuck::Spawn(e.to_string()))?;
    match mailfleet_core::child::wait_until(&mut child, Instant::now() + timeout) {
        Ok(Some(_)) => {}
        Ok(None) => {
            let _ = child.kill();
            STUCK
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert_with(HashMap::new)
                .insert(target.to_string(), child);
            return Err(Stuck::Timeout(timeout));
        }
        Err(e) => return Err(Stuck::Spawn(e.to_string())),
    }
    child
        .wait_with_output()
        .map_err(|e| Stuck::Spawn(e.to_string()))
}

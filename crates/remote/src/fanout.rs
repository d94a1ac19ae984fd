//! One command on many servers, in parallel up to a limit: what `mailfleet exec` and the
//! rolling upgrades run. Each server's lines reach the caller as they come, tagged with it.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde::Serialize;

use crate::{Access, Cmd, Reach, RemoteError, Stream};

/// A server to run on.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its name.
    pub name: String,
    /// How it is reached.
    pub access: Access,
}

/// How the command went on one server.
#[derive(Debug, Clone, Serialize)]
pub struct ServerRun {
    /// The server.
    pub server: String,
    /// Its exit code; `None` when it did not run or finish, or a signal ended it.
    pub code: Option<i32>,
    /// Why it did not run or finish.
    pub error: Option<String>,
    /// Whether the server was not reached in time (a timeout or no connection).
    pub unreachable: bool,
    /// Seconds from start to end.
    pub secs: f64,
}

impl ServerRun {
    /// The exit code standing for this run: its own, or 255 when it did not run or finish
    /// (as `ssh` itself reports).
    pub fn effective_code(&self) -> i32 {
        match (self.code, &self.error) {
            (Some(c), None) => c,
            _ => 255,
        }
    }
}

/// Runs `cmd` on every target, at most `parallel` at a time; `line` gets every line of
/// output with its server as it comes. Results in the targets' order.
pub async fn run_all(
    reach: &Reach,
    targets: &[Target],
    cmd: &Cmd,
    parallel: usize,
    line: impl Fn(&str, Stream, &[u8]) + Send + Sync,
) -> Vec<ServerRun> {
    let line = &line;
    let mut runs: Vec<(usize, ServerRun)> = futures::stream::iter(targets.iter().enumerate())
        .map(|(i, t)| async move {
            let started = Instant::now();
            let r = reach
                .run_lines(&t.name, &t.access, cmd, |s, l| line(&t.name, s, l))
                .await;
            (i, server_run(&t.name, r, started.elapsed()))
        })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    runs.sort_by_key(|(i, _)| *i);
    runs.into_iter().map(|(_, r)| r).collect()
}

fn server_run(server: &str, r: Result<Option<i32>, RemoteError>, took: Duration) -> ServerRun {
    let (code, error, unreachable) = match r {
        Ok(code) => (code, None, false),
        Err(e) => {
            let unreachable = e.is_unreachable() || e.is_timeout();
            (None, Some(e.to_string()), unreachable)
        }
    };
    ServerRun {
        server: server.to_string(),
        code,
        error,
        unreachable,
        secs: took.as_secs_f64(),
    }
}

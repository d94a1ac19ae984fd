//! The demo's Redis: shared state for several MTAs (the policy service's counters).

use std::process::Command;
use std::time::Duration;

use crate::layout::Layout;
use crate::process::{self, run};
use crate::{StackError, io_err};

/// Starts Redis daemonised, without persistence.
pub fn start(layout: &Layout, host: &str, port: u16) -> Result<(), StackError> {
    start_with(layout, host, port, &[])
}

/// Starts Redis with extra settings (`--rename-command KEYS ""`, as providers do to keep a
/// command that blocks the server away from clients).
pub fn start_with(
    layout: &Layout,
    host: &str,
    port: u16,
    extra: &[&str],
) -> Result<(), StackError> {
    let dir = layout.redis();
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let log = layout.log_dir().join("redis.log");
    run(Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", host])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "yes"])
        .arg("--pidfile")
        .arg(layout.redis_pid())
        .arg("--dir")
        .arg(&dir)
        .arg("--logfile")
        .arg(&log)
        .args(extra))?;
    process::wait_listening("redis", host, port, &log, Duration::from_secs(30))
}

/// Stops Redis by its PID.
pub fn stop(layout: &Layout) -> Result<Option<i32>, StackError> {
    process::stop(&layout.redis_pid(), "redis-server", Duration::from_secs(10))
}

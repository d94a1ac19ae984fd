//! The daemon's `backup` part: backs every store up at the times of `[backup] schedule`, one
//! run at a time (a run started from the dashboard at that time means this one is skipped
//! and said), each in the audit log as `schedule` and on the backups page. The runs keep the
//! backup's own guarantees: a hanging target aborts the run at `[backup] timeout`, a failed
//! run alarms. At shutdown a running backup is left to the process's end: the repository
//! is crash-safe, the next run starts clean.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use mailfleet_core::Config;
use mailfleet_core::audit::{Actor, AuditLog};
use mailfleet_core::config::next_due;
use mailfleet_core::shutdown::Shutdown;

use crate::board::Board;
use crate::web::ops::Ops;

/// The longest sleep between looks at the clock: a wall clock set forward or back (NTP, a
/// resumed VM) moves the next run with it instead of leaving a stale timer.
const LOOK: Duration = Duration::from_secs(60);

/// Who the audit log says started a scheduled run.
fn actor() -> Actor {
    Actor {
        who: "schedule".into(),
        via: "serve".into(),
        from: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "this machine".into()),
    }
}

/// Runs the schedule until `shutdown`.
pub async fn run(
    config: Config,
    board: Arc<Board>,
    ops: Arc<dyn Ops>,
    shutdown: Shutdown,
) -> Result<(), String> {
    let audit = AuditLog::new(&config.data_dir);
    let mut last = Utc::now();
    loop {
        let now = Utc::now();
        let due = next_due(&config.backup.schedule, now, last)
            .ok_or("[backup] schedule is empty: the backup part has nothing to do")?;
        tracing::info!(
            "backup schedule: next run at {}",
            due.format("%Y-%m-%d %H:%M:%S UTC")
        );
        board.set_next_backup(Some(due));
        loop {
            let left = (due - Utc::now()).to_std().unwrap_or_default();
            if left.is_zero() {
                break;
            }
            tokio::select! {
                _ = shutdown.wait() => {
                    board.set_next_backup(None);
                    return Ok(());
                }
                _ = tokio::time::sleep(left.min(LOOK)) => {}
            }
        }
        last = Utc::now();
        board.set_next_backup(None);
        if !board.start_backup("schedule") {
            tracing::warn!(
                "backup schedule: the run due now is skipped, one started from the dashboard still runs"
            );
            continue;
        }
        let id = match audit.begin(&actor(), "backup run", &["(scheduled)".to_string()]) {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(
                    "backup schedule: {e}: the run is not taken without its audit record"
                );
                board.end_backup(format!("not started: {e}"));
                continue;
            }
        };
        let ended = tokio::select! {
            r = ops.backup() => Some(r),
            _ = shutdown.wait() => None,
        };
        let (shown, logged) = match ended {
            Some(Ok(did)) => (did, "ok".to_string()),
            Some(Err(e)) => (format!("failed: {e}"), format!("error: {e}")),
            None => (
                "stopped by the daemon's shutdown".to_string(),
                "error: stopped by the daemon's shutdown".to_string(),
            ),
        };
        tracing::info!("backup schedule: {shown}");
        if let Err(e) = audit.end(&id, &logged) {
            tracing::error!("backup schedule: {e}");
        }
        board.end_backup(shown);
        if shutdown.is_fired() {
            return Ok(());
        }
    }
}

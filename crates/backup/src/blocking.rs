//! Repository work (blocking: the target is behind its worker process) run off the async
//! threads, for the commands the CLI and the daemon call.

use crate::error::BackupError;

/// Runs `f` on a blocking thread; `what` names the work if the thread fails.
pub(crate) async fn off_runtime<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Result<T, BackupError> + Send + 'static,
) -> Result<T, BackupError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackupError::Format(format!("{what}: the thread failed: {e}")))?
}

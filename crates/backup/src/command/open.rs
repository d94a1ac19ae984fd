//! The repository a config names, opened with every target operation in a worker process
//! under the deadline; the worker's side; and new keys.

use std::path::Path;
use std::process::Command;

use mailfleet_core::Config;
use mailfleet_core::config::RepoLocation;

use crate::crypto::Keys;
use crate::error::BackupError;
use crate::repo::Repository;
use crate::s3::S3Target;
use crate::target::{DirTarget, Target};
use crate::worker::Guarded;

/// The hidden `mailfleet` subcommand that serves target operations: the worker is the same
/// binary, started with the same config.
pub const WORKER_ARGS: [&str; 2] = ["backup", "target-worker"];

/// The command that starts the target worker for this config.
pub fn worker_command(config: &Config) -> Result<Command, BackupError> {
    let exe = std::env::current_exe().map_err(|e| BackupError::Target {
        what: "start the target worker".into(),
        message: format!("finding the mailfleet binary: {e}"),
    })?;
    let mut cmd = Command::new(exe);
    cmd.arg("--config").arg(&config.source).args(WORKER_ARGS);
    Ok(cmd)
}

/// The target, behind its worker process.
pub fn guarded(config: &Config) -> Result<Guarded, BackupError> {
    Guarded::spawn(
        worker_command(config)?,
        config.backup.timeout,
        config.backup.repository.to_string(),
    )
}

/// The repository keys, when `[backup] key_file` is set.
pub fn keys(config: &Config) -> Result<Option<Keys>, BackupError> {
    config
        .backup
        .key_file
        .as_deref()
        .map(|f| Keys::load(f).map_err(|e| BackupError::Format(format!("[backup] key_file: {e}"))))
        .transpose()
}

/// The repository of the config (created on first use), every target operation in the worker.
pub fn open(config: &Config) -> Result<Repository, BackupError> {
    let target = guarded(config)?;
    Repository::open_or_init(Box::new(target), keys(config)?)
}

/// The target itself, for the worker process to serve.
pub fn target(config: &Config) -> Result<Box<dyn Target>, BackupError> {
    Ok(match &config.backup.repository {
        RepoLocation::Dir { path } => Box::new(DirTarget::new(path)?),
        RepoLocation::S3(loc) => Box::new(S3Target::new(loc)?),
    })
}

/// The worker's main loop: serves target operations on stdin and stdout until stdin closes.
pub fn serve_worker(config: &Config) -> Result<(), BackupError> {
    let target = target(config)?;
    crate::worker::serve(target.as_ref()).map_err(|e| BackupError::Target {
        what: "serve".into(),
        message: e.to_string(),
    })
}

/// Writes a new random key to `file` (mode 0600, never over an existing file).
pub fn keygen(file: &Path) -> Result<(), BackupError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |e: std::io::Error| BackupError::Io {
        path: file.to_path_buf(),
        source: std::io::Error::new(
            e.kind(),
            format!("{e} (an existing key is never overwritten)"),
        ),
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .map_err(io)?;
    f.write_all(crate::crypto::generate()?.as_bytes())
        .map_err(BackupError::io(file))?;
    f.sync_all().map_err(BackupError::io(file))
}

//! The repository commands: list, summary, verify, forget, prune, diff. Each opens the repository of
//! the config and does its work off the async threads (the target is behind its worker).

use mailfleet_core::Config;

use crate::error::BackupError;
use crate::maintenance::{AccountDiff, ForgetPlan, Keep, PruneReport};
use crate::repo::Repository;
use crate::snapshot::Snapshot;
use crate::snapshots::SnapshotListing;
use crate::verify::VerifyReport;

/// Opens the repository and runs `f` on it, on a blocking thread.
pub async fn with_repo<T: Send + 'static>(
    config: &Config,
    f: impl FnOnce(&Repository) -> Result<T, BackupError> + Send + 'static,
) -> Result<T, BackupError> {
    let config = config.clone();
    crate::blocking::off_runtime("the repository", move || f(&super::open(&config)?)).await
}

/// The snapshots, oldest first, and those that cannot be read.
pub async fn list(config: &Config) -> Result<SnapshotListing, BackupError> {
    with_repo(config, Repository::snapshot_listing).await
}

/// The repository at a glance: its snapshots and what it stores.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// The snapshots, oldest first, and those that cannot be read.
    pub listing: SnapshotListing,
    /// Blobs stored.
    pub blobs: u64,
    /// Bytes they take in the repository.
    pub stored_bytes: u64,
}

/// The snapshots and what the repository stores.
pub async fn summary(config: &Config) -> Result<Summary, BackupError> {
    with_repo(config, |r| {
        let listing = r.snapshot_listing()?;
        let (blobs, stored_bytes) = r.stored()?;
        Ok(Summary {
            listing,
            blobs,
            stored_bytes,
        })
    })
    .await
}

/// Checks every snapshot's messages are complete (and with `read_data`, rebuilds them).
pub async fn verify(config: &Config, read_data: bool) -> Result<VerifyReport, BackupError> {
    with_repo(config, move |r| crate::verify::verify(r, read_data)).await
}

/// Forgets the snapshots the policy does not keep; refuses a policy that keeps nothing.
pub async fn forget(config: &Config, keep: Keep, dry_run: bool) -> Result<ForgetPlan, BackupError> {
    if keep.last + keep.daily + keep.weekly + keep.monthly == 0 {
        return Err(BackupError::Usage(
            "forget needs a policy: --keep-last, --keep-daily, --keep-weekly or --keep-monthly (it would forget everything)".into(),
        ));
    }
    with_repo(config, move |r| {
        crate::maintenance::forget(r, keep, dry_run)
    })
    .await
}

/// Deletes the data no snapshot needs.
pub async fn prune(config: &Config, dry_run: bool) -> Result<PruneReport, BackupError> {
    with_repo(config, move |r| crate::maintenance::prune(r, dry_run)).await
}

/// What changed between two snapshots (ids, prefixes or `latest`).
pub async fn diff(
    config: &Config,
    first: String,
    second: String,
) -> Result<(Snapshot, Snapshot, Vec<AccountDiff>), BackupError> {
    with_repo(config, move |r| {
        let (a, b) = (r.snapshot(&first)?, r.snapshot(&second)?);
        let d = crate::maintenance::diff(r, &a, &b)?;
        Ok((a, b, d))
    })
    .await
}

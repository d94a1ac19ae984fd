//! `mailfleet backup ...`: wiring the backup crate to the config (the run itself is in
//! `backup_run`, restores in `restore`).

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use mailfleet_backup::crypto::Keys;
use mailfleet_backup::maintenance::Keep;
use mailfleet_backup::repo::Repository;
use mailfleet_backup::s3::S3Target;
use mailfleet_backup::target::{DirTarget, Target};
use mailfleet_backup::worker::Guarded;
use mailfleet_core::Config;
use mailfleet_core::config::RepoLocation;

use super::{Context, print_json};

#[derive(Debug, Subcommand)]
pub(crate) enum BackupCmd {
    /// Back up the stores' Maildirs into a new snapshot (only what changed is read).
    Run {
        /// Only the accounts on this store (repeatable).
        #[arg(long)]
        server: Vec<String>,
        /// Only this account (repeatable).
        #[arg(long)]
        account: Vec<String>,
    },
    /// The snapshots in the repository.
    List,
    /// Check that every snapshot's messages are complete in the repository.
    Verify {
        /// Also read every blob and rebuild every message, checking its hash.
        #[arg(long)]
        read_data: bool,
    },
    /// Forget snapshots beyond a keep policy (their data goes with the next prune).
    Forget {
        /// Keep the newest N snapshots.
        #[arg(long, default_value_t = 0)]
        keep_last: usize,
        /// Keep the newest snapshot of each of the last N days.
        #[arg(long, default_value_t = 0)]
        keep_daily: usize,
        /// Keep the newest snapshot of each of the last N weeks.
        #[arg(long, default_value_t = 0)]
        keep_weekly: usize,
        /// Keep the newest snapshot of each of the last N months.
        #[arg(long, default_value_t = 0)]
        keep_monthly: usize,
        /// Show what would be forgotten, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete the data no snapshot needs any more (waits for no backup: refuses while one runs).
    Prune {
        /// Count what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// What changed between two snapshots: messages added, removed, flags changed.
    Diff {
        /// The older snapshot (id, prefix or `latest`).
        first: String,
        /// The newer snapshot.
        second: String,
    },
    /// Write a new random key to FILE (mode 0600) for `[backup] key_file`; keep a copy apart
    /// from the backups: without it they cannot be read.
    Keygen {
        /// The key file to create (never overwritten).
        file: std::path::PathBuf,
    },
    /// (internal) Serve repository operations on stdin/stdout for a backup process.
    #[command(hide = true)]
    TargetWorker,
}

/// The repository, with every target operation done by a worker process under the deadline.
pub(super) fn open(config: &Config) -> anyhow::Result<Repository> {
    let target = guarded(config)?;
    Ok(Repository::open_or_init(Box::new(target), keys(config)?)?)
}

/// The repository keys, when `[backup] key_file` is set.
pub(super) fn keys(config: &Config) -> anyhow::Result<Option<Keys>> {
    config
        .backup
        .key_file
        .as_deref()
        .map(|f| Keys::load(f).context("[backup] key_file"))
        .transpose()
}

fn keygen(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .with_context(|| {
            format!(
                "creating {} (an existing key is never overwritten)",
                file.display()
            )
        })?;
    f.write_all(mailfleet_backup::crypto::generate()?.as_bytes())?;
    f.sync_all()?;
    eprintln!(
        "wrote {}: set [backup] key_file to it, and keep a copy away from the backups",
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) fn guarded(config: &Config) -> anyhow::Result<Guarded> {
    let mut cmd = std::process::Command::new(
        std::env::current_exe().context("finding the mailfleet binary for the target worker")?,
    );
    cmd.arg("--config")
        .arg(&config.source)
        .args(["backup", "target-worker"]);
    let describe = config.backup.repository.to_string();
    Ok(Guarded::spawn(cmd, config.backup.timeout, describe)?)
}

/// The target the worker serves, from the config.
fn target(config: &Config) -> anyhow::Result<Box<dyn Target>> {
    Ok(match &config.backup.repository {
        RepoLocation::Dir { path } => Box::new(DirTarget::new(path)?),
        RepoLocation::S3(loc) => Box::new(S3Target::new(loc)?),
    })
}

pub(crate) async fn run(cmd: BackupCmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    if let BackupCmd::Keygen { file } = &cmd {
        return keygen(file);
    }
    let config = ctx.load()?;
    match cmd {
        BackupCmd::Keygen { .. } => unreachable!("handled before the config is loaded"),
        BackupCmd::TargetWorker => {
            // Blocking I/O (and S3's own runtime) off the async threads.
            tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                mailfleet_backup::worker::serve(target(&config)?.as_ref())?;
                Ok(())
            })
            .await??;
            Ok(ExitCode::SUCCESS)
        }
        BackupCmd::Run { server, account } => {
            super::backup_run::run_backup(&config, ctx, &server, &account).await
        }
        BackupCmd::List => {
            let repo = open(&config)?;
            let snaps = repo.snapshots()?;
            if ctx.json {
                print_json(&snaps)?;
            } else if snaps.is_empty() {
                println!("no snapshots in {}", config.backup.repository);
            } else {
                println!(
                    "{:<28} {:<20} {:>8} {:>10} {:>14}",
                    "ID", "TIME", "ACCOUNTS", "MESSAGES", "BYTES"
                );
                for s in snaps {
                    println!(
                        "{:<28} {:<20} {:>8} {:>10} {:>14}",
                        s.id,
                        s.time.format("%Y-%m-%d %H:%M:%S"),
                        s.accounts.len(),
                        s.accounts.iter().map(|a| a.messages).sum::<u64>(),
                        s.accounts.iter().map(|a| a.bytes).sum::<u64>()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        BackupCmd::Forget {
            keep_last,
            keep_daily,
            keep_weekly,
            keep_monthly,
            dry_run,
        } => {
            if keep_last + keep_daily + keep_weekly + keep_monthly == 0 {
                bail!(
                    "forget needs a policy: --keep-last, --keep-daily, --keep-weekly or --keep-monthly (it would forget everything)"
                );
            }
            let keep = Keep {
                last: keep_last,
                daily: keep_daily,
                weekly: keep_weekly,
                monthly: keep_monthly,
            };
            let plan = mailfleet_backup::maintenance::forget(&open(&config)?, keep, dry_run)?;
            if ctx.json {
                print_json(&plan)?;
            } else {
                let verb = if dry_run { "would forget" } else { "forgot" };
                println!(
                    "keeping {} snapshots; {verb} {}",
                    plan.keep.len(),
                    plan.forget.len()
                );
                for id in &plan.forget {
                    println!("  {id}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        BackupCmd::Prune { dry_run } => {
            let report = mailfleet_backup::maintenance::prune(&open(&config)?, dry_run)?;
            if ctx.json {
                print_json(&report)?;
            } else {
                println!(
                    "{} blobs in use; {} {} unused blobs ({} packs deleted, {} rewritten; {} unused kept in packs mostly in use) and {} leftover temporary files",
                    report.referenced,
                    if dry_run { "would delete" } else { "deleted" },
                    report.deleted,
                    report.packs_deleted,
                    report.packs_rewritten,
                    report.unused_kept,
                    report.temporary_files
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        BackupCmd::Diff { first, second } => {
            let repo = open(&config)?;
            let (a, b) = (repo.snapshot(&first)?, repo.snapshot(&second)?);
            let d = mailfleet_backup::maintenance::diff(&repo, &a, &b)?;
            if ctx.json {
                print_json(&d)?;
            } else if d.is_empty() {
                println!("no difference between {} and {}", a.id, b.id);
            } else {
                for acc in &d {
                    println!(
                        "{}: {} added, {} removed, {} with new flags",
                        acc.address,
                        acc.added.len(),
                        acc.removed.len(),
                        acc.flags_changed.len()
                    );
                    for m in &acc.added {
                        println!("  + {m}");
                    }
                    for m in &acc.removed {
                        println!("  - {m}");
                    }
                    for m in &acc.flags_changed {
                        println!("  ~ {m}");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        BackupCmd::Verify { read_data } => {
            let repo = open(&config)?;
            let report = mailfleet_backup::verify::verify(&repo, read_data)?;
            if ctx.json {
                print_json(&report)?;
            } else {
                println!(
                    "{} snapshots, {} messages, {} blobs checked{}: {}",
                    report.snapshots,
                    report.messages,
                    report.blobs,
                    if read_data { " (data read)" } else { "" },
                    if report.ok() { "OK" } else { "DAMAGED" }
                );
                for d in &report.damaged {
                    println!("  {d}");
                }
            }
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
    }
}

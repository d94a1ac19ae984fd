//! `mailfleet backup ...`: the backup crate's commands, printed (restores in `restore`).

use std::process::ExitCode;

use clap::Subcommand;
use mailfleet_backup::command::job::{Ended, Progress, RunOptions};
use mailfleet_backup::command::{open, repo};
use mailfleet_backup::maintenance::Keep;
use mailfleet_core::Config;

use super::backup_print::{
    print_diff, print_forget, print_prune, print_report, print_snapshots, print_verify,
};
use super::{Context, exit, print_json};

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
        /// Back up here, even stores reached over SSH: what mailfleet runs on each store.
        #[arg(long)]
        here: bool,
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

fn progress(ctx: &Context) -> Option<Box<dyn Progress>> {
    let show = !ctx.json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    show.then(|| Box::new(super::progress::Bar::default()) as Box<dyn Progress>)
}

/// Prints how a run of `what` ended (its report, unless `--json`) and gives its exit code.
fn show_ended(ctx: &Context, what: &str, ended: &Ended) -> u8 {
    let (code, verb) = match ended {
        Ended::Ok(r) => {
            if !ctx.json {
                print_report(r);
            }
            return exit::OK;
        }
        Ended::Failed { .. } => (exit::FAILED, "failed"),
        Ended::Aborted { .. } => (exit::UNREACHABLE, "aborted"),
        Ended::Skipped { .. } => (exit::SKIPPED, "skipped"),
    };
    eprintln!(
        "mailfleet: {what} {verb}: {}",
        ended.error().unwrap_or_default()
    );
    code
}

async fn run_job(config: &Config, ctx: &Context, options: RunOptions) -> anyhow::Result<ExitCode> {
    let ended = mailfleet_backup::command::job::run(config, &options, progress(ctx)).await?;
    let code = show_ended(ctx, "backup", &ended);
    if ctx.json {
        print_json(&ended)?;
    }
    Ok(exit::code(code))
}

/// `backup run`: each SSH-reached store backed up on itself, the local ones here; the exit
/// code that of the worst part.
async fn run_on_stores(
    config: &Config,
    ctx: &Context,
    options: RunOptions,
) -> anyhow::Result<ExitCode> {
    let runs = mailfleet_backup::command::on_store::run(config, &options, progress(ctx)).await?;
    let worst = runs.iter().map(|r| r.ended.severity()).max();
    let mut code = exit::OK;
    for r in &runs {
        if !ctx.json && r.ended.error().is_none() {
            println!("{} (on {}):", r.stores.join(", "), r.ran_on);
        }
        let c = show_ended(ctx, &format!("backup of {}", r.stores.join(", ")), &r.ended);
        if worst == Some(r.ended.severity()) {
            code = c;
        }
    }
    if ctx.json {
        print_json(&runs)?;
    }
    Ok(exit::code(code))
}

pub(crate) async fn run(cmd: BackupCmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    if let BackupCmd::Keygen { file } = &cmd {
        open::keygen(file)?;
        eprintln!(
            "wrote {}: set [backup] key_file to it, and keep a copy away from the backups",
            file.display()
        );
        return Ok(exit::code(exit::OK));
    }
    let config = ctx.load()?;
    match cmd {
        BackupCmd::Keygen { .. } => unreachable!("handled before the config is loaded"),
        BackupCmd::TargetWorker => {
            // Blocking I/O (and S3's own runtime) off the async threads.
            tokio::task::spawn_blocking(move || open::serve_worker(&config)).await??;
        }
        BackupCmd::Run {
            server,
            account,
            here,
        } => {
            let options = RunOptions {
                servers: server,
                accounts: account,
            };
            if !mailfleet_backup::command::on_store::on_stores(&config, here) {
                return run_job(&config, ctx, options).await;
            }
            return run_on_stores(&config, ctx, options).await;
        }
        BackupCmd::List => {
            let listing = repo::list(&config).await?;
            if ctx.json {
                print_json(&listing.intact)?;
            } else {
                print_snapshots(&config, &listing.intact);
            }
            for d in &listing.damaged {
                eprintln!("mailfleet: snapshot {} is damaged: {}", d.id, d.error);
            }
            if !listing.damaged.is_empty() {
                return Ok(exit::code(exit::DAMAGED));
            }
        }
        BackupCmd::Forget {
            keep_last,
            keep_daily,
            keep_weekly,
            keep_monthly,
            dry_run,
        } => {
            let keep = Keep {
                last: keep_last,
                daily: keep_daily,
                weekly: keep_weekly,
                monthly: keep_monthly,
            };
            let plan = repo::forget(&config, keep, dry_run).await?;
            if ctx.json {
                print_json(&plan)?;
            } else {
                print_forget(&plan, dry_run);
            }
        }
        BackupCmd::Prune { dry_run } => {
            let report = repo::prune(&config, dry_run).await?;
            if ctx.json {
                print_json(&report)?;
            } else {
                print_prune(&report, dry_run);
            }
        }
        BackupCmd::Diff { first, second } => {
            let (a, b, d) = repo::diff(&config, first, second).await?;
            if ctx.json {
                print_json(&d)?;
            } else {
                print_diff(&a, &b, &d);
            }
        }
        BackupCmd::Verify { read_data } => {
            let report = repo::verify(&config, read_data).await?;
            if ctx.json {
                print_json(&report)?;
            } else {
                print_verify(&report, read_data);
            }
            if !report.ok() {
                return Ok(exit::code(exit::DAMAGED));
            }
        }
    }
    Ok(exit::code(exit::OK))
}

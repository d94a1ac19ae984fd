//! `mailfleet backup ...` and `mailfleet restore`: wiring the backup crate to the config and
//! the account directory.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use mailfleet_backup::repo::Repository;
use mailfleet_backup::run::{RunReport, Source};
use mailfleet_backup::target::DirTarget;
use mailfleet_core::backup_status::BackupRun;
use mailfleet_core::directory::Filter;
use mailfleet_core::{Config, Role};

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
}

/// `mailfleet restore`.
#[derive(Debug, Args)]
pub(crate) struct RestoreCmd {
    /// The account to restore (all accounts of the snapshot when not given).
    #[arg(long)]
    account: Option<String>,
    /// Only this folder (INBOX, Sent, Lists.rust).
    #[arg(long)]
    folder: Option<String>,
    /// Only the message with this Message-ID.
    #[arg(long, conflicts_with = "search")]
    message_id: Option<String>,
    /// Only messages whose headers or text contain this.
    #[arg(long)]
    search: Option<String>,
    /// The snapshot (id or prefix; the newest when not given).
    #[arg(long, default_value = "latest")]
    snapshot: String,
    /// Write the Maildirs under this directory (DIR/DOMAIN/LOCAL/Maildir).
    #[arg(long)]
    to: PathBuf,
}

fn open(config: &Config) -> anyhow::Result<Repository> {
    let target = DirTarget::new(&config.backup.repository)?;
    Ok(Repository::open_or_init(Box::new(target))?)
}

async fn sources(
    config: &Config,
    servers: &[String],
    accounts: &[String],
) -> anyhow::Result<Vec<Source>> {
    for s in servers {
        match config.fleet.server(s) {
            Some(srv) if srv.has_role(Role::Mailbox) => {}
            Some(_) => bail!("--server {s}: not a mailbox store"),
            None => bail!("--server {s}: no such server in the config"),
        }
    }
    let directory = mailfleet_core::directory::open(&config.directory).await?;
    let all = directory.list(&Filter::default()).await?;
    let mut out = Vec::new();
    for a in &all {
        let address = a.address.to_string();
        if (!servers.is_empty() && !servers.contains(&a.server))
            || (!accounts.is_empty() && !accounts.contains(&address))
        {
            continue;
        }
        let Some(maildir) = config
            .fleet
            .server(&a.server)
            .and_then(|s| s.maildir_of(&a.address))
        else {
            tracing::warn!("{address}: its store {} has no maildir_root here", a.server);
            continue;
        };
        out.push(Source {
            server: a.server.clone(),
            address,
            maildir,
        });
    }
    for want in accounts {
        if !out.iter().any(|s| &s.address == want) {
            bail!("--account {want}: not in the directory (or not on the stores asked for)");
        }
    }
    Ok(out)
}

fn print_report(r: &RunReport) {
    println!(
        "snapshot {}: {} accounts, {} messages ({} bytes); read {} new or changed ({} bytes), {} unchanged, {} vanished during the run",
        r.snapshot,
        r.accounts,
        r.messages,
        r.bytes,
        r.read_messages,
        r.read_bytes,
        r.unchanged_messages,
        r.vanished
    );
    println!(
        "stored {} new blobs, {} bytes ({} already there); {:.1}x less than read; {:.2} s",
        r.stored.new_blobs,
        r.stored.stored_bytes,
        r.stored.reused_blobs,
        r.dedup_ratio(),
        r.elapsed_secs
    );
}

async fn run_backup(
    config: &Config,
    ctx: &Context,
    servers: &[String],
    accounts: &[String],
) -> anyhow::Result<ExitCode> {
    let started = chrono::Utc::now();
    let sources = sources(config, servers, accounts).await?;
    let result =
        open(config).and_then(|repo| Ok(mailfleet_backup::run::run(&repo, &sources, &mut |_| {})?));
    let finished = chrono::Utc::now();
    let (snapshot, report, error) = match &result {
        Ok((s, r)) => (Some(s), Some(r), None),
        Err(e) => (None, None, Some(format!("{e:#}"))),
    };
    let mut stores: Vec<&str> = sources.iter().map(|s| s.server.as_str()).collect();
    stores.sort_unstable();
    stores.dedup();
    for name in stores {
        let Some(path) = config
            .fleet
            .server(name)
            .and_then(|s| s.backup_status.clone())
        else {
            continue;
        };
        let messages = snapshot.map_or(0, |s| {
            s.accounts
                .iter()
                .filter(|a| a.server == name)
                .map(|a| a.messages)
                .sum()
        });
        let bytes = report.map_or(0, |r| r.stored.stored_bytes);
        let run = BackupRun {
            started,
            finished: Some(finished),
            result: if error.is_none() { "ok" } else { "failed" }.into(),
            messages,
            bytes,
            error: error.clone(),
        };
        mailfleet_backup::run::write_status(&path, run)
            .with_context(|| format!("writing the backup status of {name}"))?;
    }
    let (_, report) = result?;
    if ctx.json {
        print_json(&report)?;
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn run(cmd: BackupCmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    let config = ctx.load()?;
    match cmd {
        BackupCmd::Run { server, account } => run_backup(&config, ctx, &server, &account).await,
        BackupCmd::List => {
            let repo = open(&config)?;
            let snaps = repo.snapshots()?;
            if ctx.json {
                print_json(&snaps)?;
            } else if snaps.is_empty() {
                println!("no snapshots in {}", config.backup.repository.display());
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

pub(crate) fn restore(cmd: RestoreCmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    let config = ctx.load()?;
    let repo = open(&config)?;
    let snapshot = repo.snapshot(&cmd.snapshot)?;
    let filter = mailfleet_backup::restore::Filter {
        account: cmd.account,
        folder: cmd.folder,
        message_id: cmd.message_id,
        search: cmd.search,
    };
    let report = mailfleet_backup::restore::to_dir(&repo, &snapshot, &filter, &cmd.to)?;
    if ctx.json {
        print_json(&report)?;
    } else {
        println!(
            "restored {} messages ({} bytes) of {} accounts from snapshot {} to {}",
            report.messages,
            report.bytes,
            report.accounts,
            snapshot.id,
            cmd.to.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

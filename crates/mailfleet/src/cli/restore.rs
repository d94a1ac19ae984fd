//! `mailfleet restore`: a snapshot (by id or time) to a directory.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;

use std::collections::HashMap;

use mailfleet_backup::into_store::{Login, StoreAddr};
use mailfleet_backup::repo::Repository;
use mailfleet_backup::restore::Filter;
use mailfleet_backup::snapshot::Snapshot;
use mailfleet_core::Config;

use super::backup::open;
use super::{Context, print_json};

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
    #[arg(long, default_value = "latest", conflicts_with = "at")]
    snapshot: String,
    /// The newest snapshot taken at or before this time (RFC 3339 or YYYY-MM-DD HH:MM).
    #[arg(long)]
    at: Option<String>,
    /// Write the Maildirs under this directory (DIR/DOMAIN/LOCAL/Maildir).
    #[arg(
        long,
        required_unless_present = "into_store",
        conflicts_with = "into_store"
    )]
    to: Option<PathBuf>,
    /// Put the messages back into the accounts' live stores over IMAP (APPEND, as the
    /// `[backup] imap_master_user`); messages already there are skipped.
    #[arg(long)]
    into_store: bool,
}

/// RFC 3339, `YYYY-MM-DD HH:MM[:SS]` or `YYYY-MM-DD` (UTC).
fn parse_time(s: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(23, 59, 59)
    {
        return Ok(t.and_utc());
    }
    bail!("--at {s:?}: not an RFC 3339 time, YYYY-MM-DD HH:MM or YYYY-MM-DD")
}

pub(crate) async fn restore(cmd: RestoreCmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    let config = ctx.load()?;
    let repo = open(&config)?;
    let snapshot = match &cmd.at {
        Some(at) => {
            let t = parse_time(at)?;
            repo.snapshots()?
                .into_iter()
                .rfind(|s| s.time <= t)
                .with_context(|| format!("no snapshot taken at or before {at}"))?
        }
        None => repo.snapshot(&cmd.snapshot)?,
    };
    let filter = mailfleet_backup::restore::Filter {
        account: cmd.account,
        folder: cmd.folder,
        message_id: cmd.message_id,
        search: cmd.search,
    };
    let Some(to) = cmd.to else {
        return into_store(&config, ctx, &repo, &snapshot, &filter).await;
    };
    let report = mailfleet_backup::restore::to_dir(&repo, &snapshot, &filter, &to)?;
    if ctx.json {
        print_json(&report)?;
    } else {
        println!(
            "restored {} messages ({} bytes) of {} accounts from snapshot {} to {}",
            report.messages,
            report.bytes,
            report.accounts,
            snapshot.id,
            to.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn into_store(
    config: &Config,
    ctx: &Context,
    repo: &Repository,
    snapshot: &Snapshot,
    filter: &Filter,
) -> anyhow::Result<ExitCode> {
    let b = &config.backup;
    let (Some(user), Some(file)) = (&b.imap_master_user, &b.imap_master_password_file) else {
        bail!(
            "--into-store needs [backup] imap_master_user and imap_master_password_file (a Dovecot master user)"
        );
    };
    let password =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let password = password.lines().next().unwrap_or("").to_string();
    // Where each account lives now: a moved account goes back to its new store.
    let directory = mailfleet_core::directory::open(&config.directory).await?;
    let servers: HashMap<String, String> = directory
        .list(&mailfleet_core::directory::Filter::default())
        .await?
        .into_iter()
        .map(|a| (a.address.to_string(), a.server))
        .collect();
    let store_of = |address: &str| -> Option<StoreAddr> {
        let s = config.fleet.server(servers.get(address)?)?;
        Some(StoreAddr {
            host: s.host.clone(),
            port: s.ports.imap?,
            tls: mailfleet_probe::tls::Tls::new(&s.tls, &s.host).ok(),
        })
    };
    let login = Login {
        master_user: user,
        master_password: &password,
        timeout: config.probe.timeout.max(std::time::Duration::from_secs(30)),
    };
    let report =
        mailfleet_backup::into_store::into_store(repo, snapshot, filter, &login, &store_of).await?;
    if ctx.json {
        print_json(&report)?;
    } else {
        println!(
            "appended {} messages to {} accounts from snapshot {} ({} already there, {} folders created)",
            report.appended, report.accounts, snapshot.id, report.skipped, report.created_folders
        );
    }
    Ok(ExitCode::SUCCESS)
}

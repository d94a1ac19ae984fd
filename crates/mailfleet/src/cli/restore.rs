//! `mailfleet restore`: a snapshot (by id or time) to a directory.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;

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
    #[arg(long)]
    to: PathBuf,
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

pub(crate) fn restore(cmd: RestoreCmd, ctx: &Context) -> anyhow::Result<ExitCode> {
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

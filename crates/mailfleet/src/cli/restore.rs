//! `mailfleet restore`: a snapshot (by id or time) to a directory or into the stores.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use mailfleet_backup::command::restore::{Destination, RestoreOptions, Restored, Which};
use mailfleet_backup::restore::Filter;

use super::{Context, exit, print_json};

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
    /// The snapshot (id or prefix; the newest when not given, of the account when one is).
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
    Err(exit::Usage(format!(
        "--at {s:?}: not an RFC 3339 time, YYYY-MM-DD HH:MM or YYYY-MM-DD"
    ))
    .into())
}

pub(crate) async fn restore(cmd: RestoreCmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    let config = ctx.load()?;
    let snapshot = match &cmd.at {
        Some(at) => Which::At(parse_time(at)?),
        None => Which::Id(cmd.snapshot),
    };
    let options = RestoreOptions {
        snapshot,
        filter: Filter {
            account: cmd.account,
            folder: cmd.folder,
            message_id: cmd.message_id,
            search: cmd.search,
        },
        to: match cmd.to {
            Some(dir) => Destination::Dir(dir),
            None => Destination::Store,
        },
    };
    let restored = mailfleet_backup::command::restore::restore(&config, options).await?;
    // Damaged data stops nothing: everything intact is restored, the rest is listed.
    let code = if restored.failed().is_empty() {
        exit::OK
    } else {
        exit::DAMAGED
    };
    if ctx.json {
        print_json(&restored)?;
        return Ok(exit::code(code));
    }
    match &restored {
        Restored::Dir {
            snapshot,
            to,
            report,
        } => println!(
            "restored {} messages ({} bytes) of {} accounts from snapshot {snapshot} to {}",
            report.messages,
            report.bytes,
            report.accounts,
            to.display()
        ),
        Restored::Store { snapshot, report } => println!(
            "appended {} messages to {} accounts from snapshot {snapshot} ({} already there, {} folders created)",
            report.appended, report.accounts, report.skipped, report.created_folders
        ),
    }
    let failed = restored.failed();
    if !failed.is_empty() {
        eprintln!(
            "mailfleet: {} messages could not be restored (damaged in the repository):",
            failed.len()
        );
        for f in failed {
            eprintln!(
                "  {} {} {} {}: {}",
                f.account,
                f.folder,
                f.file,
                f.message_id
                    .as_deref()
                    .map_or("(Message-ID unknown)".into(), |m| format!("<{m}>")),
                f.error
            );
        }
    }
    Ok(exit::code(code))
}

//! `mailfleet stats export`: the monitor's history as CSV files per check family.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, NaiveDate, Utc};
use clap::Subcommand;
use mailfleet_probe::history::History;

use super::{Context, exit};

#[derive(Debug, Subcommand)]
pub(crate) enum StatsCmd {
    /// Write the samples as CSV files, one per check family (imap.csv, disk.csv...).
    Export {
        /// Directory to write into.
        #[arg(long, value_name = "DIR")]
        csv: PathBuf,
        /// From when: a span back from now (30m, 24h, 7d) or a date (2026-11-01) or RFC 3339 time.
        #[arg(long, default_value = "24h")]
        since: String,
    },
}

/// `30m`, `24h`, `7d`, `2026-11-01` or an RFC 3339 time.
pub(crate) fn since(s: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    if let Some((n, unit)) = s.len().checked_sub(1).map(|i| s.split_at(i))
        && let Ok(n) = n.parse::<i64>()
    {
        let span = match unit {
            "m" => chrono::Duration::minutes(n),
            "h" => chrono::Duration::hours(n),
            "d" => chrono::Duration::days(n),
            _ => {
                return Err(exit::Usage(format!(
                    "--since {s}: use a number with m, h or d, or a date"
                ))
                .into());
            }
        };
        return Ok(now - span);
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or(now));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            exit::Usage(format!(
                "--since {s}: not a span (24h), a date (2026-11-01) or an RFC 3339 time"
            ))
            .into()
        })
}

pub(crate) fn run(cmd: StatsCmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    let config = ctx.load()?;
    match cmd {
        StatsCmd::Export { csv, since: s } => {
            let from = since(&s, Utc::now())?;
            let history = History::open(&config.data_dir)?;
            let files = history.export_csv(&csv, from)?;
            if files.is_empty() {
                println!("no samples since {from} (is `mailfleet monitor` running?)");
            }
            for f in files {
                println!("wrote {}", f.display());
            }
        }
    }
    Ok(exit::code(exit::OK))
}

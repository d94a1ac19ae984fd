//! `mailfleet report [FILES...] [--server S | --role R | --group G]`: profiles and the spam
//! funnel from Postfix and Dovecot logs, local files or each server's `mail_log` read through
//! its access.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use mailfleet_report::remote::ServerLogs;
use mailfleet_report::{Options, input, output};

use super::{Context, exit, print_json};

#[derive(Debug, Args)]
pub(crate) struct ReportCmd {
    /// Log files, plain or .gz; rotated sets are read oldest first; `-` reads stdin.
    #[arg(required_unless_present_any = ["server", "role", "group"])]
    files: Vec<PathBuf>,
    /// Also read this server's `mail_log` files, through its access (repeatable).
    #[arg(long, value_name = "SERVER")]
    server: Vec<String>,
    /// Also read the logs of every server with this role (repeatable).
    #[arg(long, value_name = "ROLE")]
    role: Vec<mailfleet_core::Role>,
    /// Also read the logs of every server of this redundancy group (repeatable).
    #[arg(long, value_name = "GROUP")]
    group: Vec<String>,
    /// Show this account's profile in full.
    #[arg(long)]
    user: Option<String>,
    /// Also write the tables as CSV files into this directory.
    #[arg(long, value_name = "DIR")]
    csv: Option<PathBuf>,
    /// Also write one self-contained HTML page with charts.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Year of the first line without one (classic syslog) [default: guessed from today].
    #[arg(long)]
    year: Option<i32>,
    /// Parser threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Read the files in the order given instead of sorting rotated sets.
    #[arg(long)]
    keep_order: bool,
}

pub(crate) async fn run(cmd: ReportCmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    let servers = if cmd.server.is_empty() && cmd.role.is_empty() && cmd.group.is_empty() {
        ctx.load_if_present()?;
        Vec::new()
    } else {
        let config = ctx.load()?;
        let selected = config
            .fleet
            .select(&cmd.server, &cmd.role, &cmd.group)
            .map_err(exit::Usage)?;
        let mut logs = Vec::new();
        for s in selected {
            if s.mail_log.is_empty() {
                // Named alone, a server without logs is a mistake; picked by role or group,
                // it is one that keeps none (a directory server).
                if cmd.server.contains(&s.name) {
                    return Err(exit::Usage(format!(
                        "server {:?} has no mail_log in the config",
                        s.name
                    ))
                    .into());
                }
                continue;
            }
            logs.push(ServerLogs {
                server: s.name.clone(),
                access: s.access.clone(),
                paths: s.mail_log.clone(),
            });
        }
        if logs.is_empty() {
            return Err(exit::Usage("none of these servers has a mail_log".into()).into());
        }
        logs
    };
    let files = if cmd.keep_order {
        cmd.files.clone()
    } else {
        input::order_rotated(cmd.files.clone())
    };
    let opts = Options {
        year: cmd.year,
        threads: cmd.threads,
        progress: true,
    };
    let report = mailfleet_report::remote::run(&files, &servers, &opts).await?;
    if let Some(dir) = &cmd.csv {
        output::csv::write_dir(&report, dir)?;
    }
    if let Some(file) = &cmd.html {
        std::fs::write(file, output::html::render(&report))
            .with_context(|| format!("writing {}", file.display()))?;
    }
    if ctx.json {
        print_json(&report)?;
    } else {
        print!("{}", output::table::render(&report, cmd.user.as_deref()));
    }
    for e in &report.input.errors {
        eprintln!("mailfleet: {e}");
    }
    Ok(exit::code(if report.input.errors.is_empty() {
        exit::OK
    } else {
        exit::PROBLEM
    }))
}

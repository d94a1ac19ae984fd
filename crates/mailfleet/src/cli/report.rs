//! `mailfleet report FILES...`: profiles and the spam funnel from Postfix and Dovecot logs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use mailfleet_report::{Options, input, output};

use super::{Context, exit, print_json};

#[derive(Debug, Args)]
pub(crate) struct ReportCmd {
    /// Log files, plain or .gz; rotated sets are read oldest first; `-` reads stdin.
    #[arg(required = true)]
    files: Vec<PathBuf>,
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
    ctx.load_if_present()?;
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
    let report =
        tokio::task::spawn_blocking(move || mailfleet_report::run(&files, &opts)).await??;
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

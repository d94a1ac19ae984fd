//! `mailfleet check shift`: what needs a human at the start of a shift.

use std::process::ExitCode;

use clap::Subcommand;
use mailfleet_probe::State;

use super::{Context, print_json};

#[derive(Debug, Subcommand)]
pub(crate) enum CheckCmd {
    /// All servers up, queues and disks normal, no restarts, no new log errors since last time.
    Shift,
}

pub(crate) async fn run(cmd: CheckCmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    let config = ctx.load()?;
    match cmd {
        CheckCmd::Shift => {
            let report = mailfleet_probe::shift::run(&config).await?;
            if ctx.json {
                print_json(&report)?;
            } else {
                let since = report.since.map_or("the first run".to_string(), |t| {
                    format!("since {}", t.to_rfc3339())
                });
                if report.findings.is_empty() {
                    println!("all clear ({} checks, {since})", report.outcomes.len());
                } else {
                    println!(
                        "{} things need a human ({} checks, {since}):",
                        report.findings.len(),
                        report.outcomes.len()
                    );
                    for f in &report.findings {
                        println!("  {:8} {}", f.state.to_string(), f.what);
                    }
                }
            }
            let worst = report
                .findings
                .iter()
                .map(|f| f.state)
                .max()
                .unwrap_or(State::Ok);
            Ok(ExitCode::from(worst.exit_code()))
        }
    }
}

//! `mailfleet probe [SERVER...]`: one round of deep checks, with plugin exit codes.

use std::process::ExitCode;

use clap::Args;
use mailfleet_probe::{Outcome, State};

use super::{Context, print_json};

#[derive(Debug, Args)]
pub(crate) struct ProbeCmd {
    /// Only these servers (`local`: this machine's resources) [default: all, and local].
    servers: Vec<String>,
    /// Probe every server this many times at once (a load test; benchmarks use it).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1000))]
    repeat: u16,
    /// Print the round in the Prometheus text format instead.
    #[arg(long, conflicts_with = "json")]
    prometheus: bool,
}

pub(crate) async fn run(cmd: ProbeCmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    let config = ctx.load()?;
    let outcomes = mailfleet_probe::round(&config, &cmd.servers, usize::from(cmd.repeat)).await?;
    if cmd.prometheus {
        print!("{}", mailfleet_probe::metrics::render(&outcomes));
    } else if ctx.json {
        print_json(&outcomes)?;
    } else {
        print_table(&outcomes);
    }
    // Worst first: CRITICAL, then UNKNOWN, then WARNING (Ord on State).
    let worst = outcomes.iter().map(|o| o.state).max().unwrap_or(State::Ok);
    Ok(ExitCode::from(worst.exit_code()))
}

fn print_table(outcomes: &[Outcome]) {
    let sw = outcomes
        .iter()
        .map(|o| o.server.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let cw = outcomes
        .iter()
        .map(|o| o.check.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:sw$}  {:cw$}  {:8}  {:>8}  STEPS / MESSAGE",
        "SERVER", "CHECK", "STATE", "MS"
    );
    for o in outcomes {
        let steps: Vec<String> = o
            .steps
            .iter()
            .map(|s| format!("{} {:.1}", s.name, s.ms))
            .collect();
        println!(
            "{:sw$}  {:cw$}  {:8}  {:>8.1}  {}",
            o.server,
            o.check,
            o.state.to_string(),
            o.elapsed_ms,
            steps.join(", ")
        );
        println!("{:sw$}  {:cw$}  {:8}  {:>8}  {}", "", "", "", "", o.message);
    }
}

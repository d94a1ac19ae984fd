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
    /// Run this many rounds one after the other, reusing connections (each round's time and
    /// SSH handshakes on stderr); the last one is printed.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=100))]
    rounds: u16,
    /// Leave out machines' resources (CPU, memory, disks...): the protocol checks alone.
    #[arg(long)]
    no_resources: bool,
    /// Only this check (repeatable): a name as the output shows it (`imap`, `queue`,
    /// `e2e` for every `e2e:STORE`), or `resources` for machines' resources.
    #[arg(long = "check", value_name = "CHECK")]
    checks: Vec<String>,
    /// Print the round in the Prometheus text format instead.
    #[arg(long, conflicts_with = "json")]
    prometheus: bool,
}

pub(crate) async fn run(cmd: ProbeCmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    let config = ctx.load()?;
    let rounds = mailfleet_probe::plan::Rounds {
        servers: cmd.servers.clone(),
        repeat: usize::from(cmd.repeat),
        n: usize::from(cmd.rounds),
        resources: !cmd.no_resources,
        checks: cmd.checks.clone(),
    };
    let (outcomes, times) = mailfleet_probe::plan::rounds(&config, &rounds)
        .await
        .map_err(|e| super::exit::Usage(e.to_string()))?;
    if cmd.rounds > 1 {
        for (i, t) in times.iter().enumerate() {
            eprintln!(
                "round {}: {:.0} ms, {} SSH handshakes",
                i + 1,
                t.ms,
                t.handshakes
            );
        }
    }
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

//! `mailfleet monitor`: probe rounds on a schedule, alarms, notifications, `/metrics`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use mailfleet_core::shutdown::Shutdown;
use mailfleet_probe::State;
use mailfleet_probe::monitor::{MonitorOptions, RoundReport};

use super::{Context, exit};

#[derive(Debug, Args)]
pub(crate) struct MonitorCmd {
    /// Stop after this many rounds [default: run until SIGTERM or SIGINT].
    #[arg(long)]
    rounds: Option<u64>,
    /// Seconds between rounds [default: monitor.interval_secs].
    #[arg(long)]
    interval: Option<f64>,
}

fn print_round(r: &RoundReport) {
    let bad = r.outcomes.iter().filter(|o| o.state != State::Ok).count();
    println!(
        "round {}: {} checks, {bad} not OK, {} notifications",
        r.number,
        r.outcomes.len(),
        r.notifications.len()
    );
    for n in &r.notifications {
        println!("  {}: {}", mailfleet_notify::subject(n), n.message);
    }
}

pub(crate) async fn run(cmd: MonitorCmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    let config = ctx.load()?;
    let interval = match cmd.interval {
        Some(s) if s > 0.0 && s.is_finite() => Duration::from_secs_f64(s),
        Some(s) => {
            return Err(
                exit::Usage(format!("--interval {s}: give a positive number of seconds")).into(),
            );
        }
        None => config.monitor.interval,
    };
    let (_, shutdown) = Shutdown::on_signals()?;
    let options = MonitorOptions {
        rounds: cmd.rounds,
        interval,
    };
    mailfleet_probe::monitor::run(config, options, shutdown, print_round).await?;
    Ok(exit::code(exit::OK))
}

//! `mailfleet monitor`: probe rounds on a schedule, alarms, notifications, `/metrics`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use mailfleet_probe::monitor::{Monitor, serve_metrics};

use super::Context;

#[derive(Debug, Args)]
pub(crate) struct MonitorCmd {
    /// Stop after this many rounds [default: run until interrupted].
    #[arg(long)]
    rounds: Option<u64>,
    /// Seconds between rounds [default: monitor.interval_secs].
    #[arg(long)]
    interval: Option<f64>,
}

pub(crate) async fn run(cmd: MonitorCmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    let config = ctx.load()?;
    let interval = match cmd.interval {
        Some(s) if s > 0.0 && s.is_finite() => Duration::from_secs_f64(s),
        Some(s) => anyhow::bail!("--interval {s}: give a positive number of seconds"),
        None => config.monitor.interval,
    };
    let listen = config.monitor.listen;
    let mut monitor = Monitor::new(config)?;
    if let Some(addr) = listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("monitor.listen {addr}"))?;
        let latest = monitor.latest();
        tokio::spawn(async move {
            if let Err(e) = serve_metrics(listener, latest).await {
                tracing::error!("/metrics server: {e}");
            }
        });
        eprintln!("serving /metrics on http://{addr}/metrics");
    }
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut done = 0u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        let (outcomes, notes) = monitor.round().await;
        done += 1;
        let bad = outcomes
            .iter()
            .filter(|o| o.state != mailfleet_probe::State::Ok)
            .count();
        println!(
            "round {done}: {} checks, {bad} not OK, {} notifications",
            outcomes.len(),
            notes.len()
        );
        for n in &notes {
            println!("  {}: {}", mailfleet_probe::notify::subject(n), n.message);
        }
        if cmd.rounds.is_some_and(|r| done >= r) {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

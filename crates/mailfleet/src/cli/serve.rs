//! `mailfleet serve`: the daemon's parts wired to their libraries (the serve crate depends on
//! none of them): the monitor's rounds with its alarms and `/metrics`, and the policy server
//! with its milter, release loop and log follower.

use std::process::ExitCode;
use std::sync::Arc;

use mailfleet_core::config::ServePart;
use mailfleet_serve::Part;

use super::{Context, exit};

fn parts() -> Vec<Part> {
    vec![
        Part {
            part: ServePart::Monitor,
            run: Arc::new(|config, shutdown| {
                Box::pin(async move {
                    let options = mailfleet_probe::monitor::MonitorOptions {
                        rounds: None,
                        interval: config.monitor.interval,
                    };
                    mailfleet_probe::monitor::run(config, options, shutdown, |_| {})
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
            }),
        },
        Part {
            part: ServePart::Policy,
            run: Arc::new(|config, shutdown| {
                Box::pin(async move {
                    mailfleet_policy::service::serve(&config, shutdown)
                        .await
                        .map_err(|e| e.to_string())
                })
            }),
        },
    ]
}

pub(crate) async fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    mailfleet_serve::serve(ctx.config_path().to_path_buf(), parts()).await?;
    Ok(exit::code(exit::OK))
}

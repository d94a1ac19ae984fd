//! The daemon's parts, run as one generation per config: SIGHUP loads the config again and,
//! when it is valid, stops the generation (each part finishing its work in flight within the
//! shutdown's grace) and starts the next with it; a config that does not load is refused,
//! said in the log and mailed to `[monitor] notify_email`, and the running generation goes
//! on. SIGTERM or SIGINT stops the generation and the daemon. A part that ends on an error
//! stops the others and the daemon with that error, for its service manager to restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use mailfleet_core::Config;
use mailfleet_core::config::ServePart;
use mailfleet_core::shutdown::Shutdown;
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinSet;

use crate::ServeError;

/// Runs one part with a config until its shutdown fires; `Err` says why it stopped early.
pub type Run =
    Arc<dyn Fn(Config, Shutdown) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// A part of the daemon, as its caller wires it.
#[derive(Clone)]
pub struct Part {
    /// Which part it is (`[serve] parts` names it).
    pub part: ServePart,
    /// How it runs.
    pub run: Run,
}

/// How a generation ended.
enum Ended {
    /// SIGTERM or SIGINT.
    Stop,
    /// SIGHUP with a valid config: the next generation runs with it.
    Reload(Box<Config>),
    /// A part failed.
    Failed(ServeError),
}

/// Loads `path` again; a refused config is said and mailed, the running one kept.
async fn reload(path: &Path, running: &Config) -> Option<Config> {
    match Config::load(path) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::error!("SIGHUP: the config is refused, the running one kept: {e}");
            let notifier = mailfleet_notify::Notifier::new(running);
            let body = format!(
                "mailfleet serve was asked to reload {} and refused it:\n\n{e}\n\nThe config it was running goes on. Fix the file, then send SIGHUP again.\n",
                path.display()
            );
            for to in &running.monitor.notify_email {
                if let Err(err) = notifier
                    .mail(&to.to_string(), "[mailfleet] serve: config refused", &body)
                    .await
                {
                    tracing::warn!("the alarm to {to} was not sent: {err}");
                }
            }
            None
        }
    }
}

/// Runs `parts` (those `[serve] parts` names) with the config at `path` until SIGTERM or
/// SIGINT, reloading it on SIGHUP.
pub async fn serve(path: PathBuf, parts: Vec<Part>) -> Result<(), ServeError> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut config = Config::load(&path)?;
    let mut generation = 0u64;
    loop {
        generation += 1;
        let chosen: Vec<&Part> = config
            .serve
            .parts
            .iter()
            .filter_map(|want| parts.iter().find(|p| p.part == *want))
            .collect();
        if chosen.is_empty() {
            return Err(ServeError::Nothing(path));
        }
        let (trigger, shutdown) = Shutdown::new();
        let mut running = JoinSet::new();
        for p in &chosen {
            let (run, name, config, shutdown) = (
                p.run.clone(),
                p.part.as_str(),
                config.clone(),
                shutdown.clone(),
            );
            running.spawn(async move { (name, run(config, shutdown).await) });
        }
        let names: Vec<&str> = chosen.iter().map(|p| p.part.as_str()).collect();
        tracing::info!(
            "serve: generation {generation} runs {} with {}",
            names.join(", "),
            path.display()
        );
        let ended = loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); break Ended::Stop; }
                _ = int.recv() => { tracing::info!("SIGINT: shutting down"); break Ended::Stop; }
                _ = hup.recv() => {
                    if let Some(next) = reload(&path, &config).await {
                        tracing::info!("SIGHUP: {} reloaded", path.display());
                        break Ended::Reload(Box::new(next));
                    }
                }
                Some(done) = running.join_next() => {
                    let (part, message) = match done {
                        Ok((part, Err(message))) => (part, message),
                        Ok((part, Ok(()))) => (part, "it ended by itself".to_string()),
                        Err(e) => ("a part", format!("it panicked: {e}")),
                    };
                    break Ended::Failed(ServeError::Part { part, message });
                }
            }
        };
        trigger.fire();
        // Each part finishes what is in flight within the shutdown's grace, then returns.
        while let Some(done) = running.join_next().await {
            if let Ok((part, Err(e))) = done {
                tracing::warn!("{part} stopped with an error: {e}");
            }
        }
        match ended {
            Ended::Stop => return Ok(()),
            Ended::Failed(e) => return Err(e),
            Ended::Reload(next) => config = *next,
        }
    }
}

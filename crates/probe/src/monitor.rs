//! The monitor: probe rounds on a schedule, alarms from them, notifications by log, mail and
//! webhook, restarts noticed from the daemons' start times, each MTA's traffic from its log
//! (see [`crate::traffic`]), and the latest round for `/metrics`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use mailfleet_core::Config;
use mailfleet_core::shutdown::Shutdown;

use crate::metrics;
use crate::outcome::{Outcome, State};
use crate::plan::Plan;
use mailfleet_notify::{Alarms, Kind, Notification, Notifier, Policy};

/// The latest round in Prometheus format, shared with the `/metrics` server.
pub type Latest = Arc<RwLock<String>>;

/// A monitor between rounds.
pub struct Monitor {
    config: Config,
    plan: Plan,
    alarms: Alarms,
    /// Per server: the PID and start time of its daemon last round.
    started: HashMap<String, (i32, u64)>,
    latest: Latest,
    history: Option<crate::history::History>,
    notifier: Notifier,
    /// Each MTA's mail log, followed from round to round.
    traffic: crate::traffic::Traffic,
}

impl Monitor {
    /// A monitor of the whole fleet.
    pub fn new(config: Config) -> Result<Self, crate::plan::PlanError> {
        let plan = Plan::new(&config, &[])?;
        let m = &config.monitor;
        let policy = Policy {
            confirm: m.confirm_rounds,
            repeat: m.repeat,
            flap_window: m.flap_window,
            flap_changes: m.flap_changes,
        };
        // Without a history the monitor still alarms; say why there is none.
        let history = match crate::history::History::open(&config.data_dir) {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::error!("history disabled: {e}");
                None
            }
        };
        Ok(Monitor {
            notifier: Notifier::new(&config),
            config,
            plan,
            alarms: Alarms::new(policy),
            started: HashMap::new(),
            latest: Latest::default(),
            history,
            traffic: crate::traffic::Traffic::default(),
        })
    }

    /// The latest round for `/metrics`.
    pub fn latest(&self) -> Latest {
        Arc::clone(&self.latest)
    }

    /// Restarts since the last round, each daemon read on its server through its access (all
    /// at once); a server that cannot be asked keeps what was known of it.
    async fn restarts(&mut self) -> Vec<Notification> {
        let mut out = Vec::new();
        let servers: Vec<&mailfleet_core::Server> = self
            .config
            .fleet
            .servers
            .iter()
            .filter(|s| s.pid_file.is_some())
            .collect();
        let reach = self.plan.reach();
        let timeout = self.config.probe.timeout;
        let read = futures::future::join_all(
            servers
                .iter()
                .map(|s| crate::daemon::daemon(reach, s, timeout)),
        )
        .await;
        for (s, now) in servers.into_iter().zip(read) {
            let now = match now {
                Ok(crate::daemon::Daemon::Running(pid, start)) => Some((pid, start)),
                Ok(crate::daemon::Daemon::NotRunning) => None,
                Err(e) => {
                    tracing::warn!("restart detection: {e}");
                    continue;
                }
            };
            match (now, self.started.get(&s.name)) {
                (Some(now), Some(before)) if now != *before => out.push(Notification {
                    kind: Kind::Restart,
                    server: s.name.clone(),
                    check: "process".into(),
                    state: State::Warning,
                    message: format!("PID {} started anew (was {})", now.0, before.0),
                }),
                _ => {}
            }
            match now {
                Some(n) => {
                    self.started.insert(s.name.clone(), n);
                }
                None => {
                    self.started.remove(&s.name);
                }
            }
        }
        out
    }

    /// Runs one round: probes, alarms, notifications. Returns the outcomes and what was sent.
    pub async fn round(&mut self) -> (Vec<Outcome>, Vec<Notification>) {
        let mut outcomes = crate::plan::run(&self.config, &self.plan).await;
        outcomes.extend(self.traffic.round(&self.config, self.plan.reach()).await);
        let mut notes = self
            .alarms
            .observe(outcomes.iter().map(Outcome::observation), Instant::now());
        notes.extend(self.restarts().await);
        if let Ok(mut l) = self.latest.write() {
            *l = metrics::render(&outcomes);
        }
        let retention = self.config.monitor.retention;
        // A local SQLite insert per round: short enough to do in place.
        let now = chrono::Utc::now();
        if let Some(h) = &mut self.history {
            if let Err(e) = h.record(now, &outcomes, retention) {
                tracing::error!("recording the round: {e}");
            }
            if let Err(e) = h.record_alarms(now, &notes) {
                tracing::error!("recording the round's alarms: {e}");
            }
        }
        for n in &notes {
            self.notifier.send(n).await;
        }
        (outcomes, notes)
    }
}

/// Why the monitor could not start.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The checks could not be planned.
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    /// `[monitor] listen` could not be bound.
    #[error("monitor.listen {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// How `monitor` runs.
#[derive(Debug, Clone, Copy)]
pub struct MonitorOptions {
    /// Stop after this many rounds (`None`: until shutdown).
    pub rounds: Option<u64>,
    /// Time between the starts of two rounds.
    pub interval: std::time::Duration,
}

/// What one round found and sent.
#[derive(Debug, Clone)]
pub struct RoundReport {
    /// The round's number, from 1.
    pub number: u64,
    /// Every check's outcome.
    pub outcomes: Vec<Outcome>,
    /// The notifications it sent.
    pub notifications: Vec<Notification>,
}

/// `monitor`: rounds on a schedule, `/metrics` when `[monitor] listen` is set, until the
/// rounds asked for are done or shutdown; a round in progress is finished (it has the probe's
/// deadline). `each` sees every round. Returns the number of rounds run.
pub async fn run(
    config: Config,
    options: MonitorOptions,
    shutdown: Shutdown,
    mut each: impl FnMut(&RoundReport),
) -> Result<u64, MonitorError> {
    let listen = config.monitor.listen;
    let mut monitor = Monitor::new(config)?;
    let metrics = match listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| MonitorError::Listen { addr, source })?;
            tracing::info!("serving /metrics on http://{addr}/metrics");
            let latest = monitor.latest();
            let stop = shutdown.clone();
            Some(tokio::spawn(async move {
                if let Err(e) = serve_metrics(listener, latest, stop).await {
                    tracing::error!("/metrics server: {e}");
                }
            }))
        }
        None => None,
    };
    let mut ticker = tokio::time::interval(options.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = shutdown.wait();
    tokio::pin!(stop);
    let mut done = 0u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = &mut stop => break,
        }
        let (outcomes, notifications) = monitor.round().await;
        done += 1;
        each(&RoundReport {
            number: done,
            outcomes,
            notifications,
        });
        if options.rounds.is_some_and(|r| done >= r) {
            break;
        }
    }
    if let Some(m) = metrics {
        m.abort();
    }
    Ok(done)
}

/// Serves `GET /metrics` with the latest round until shutdown (requests in flight finish).
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    latest: Latest,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let latest = Arc::clone(&latest);
            async move {
                let body = latest.read().map(|l| l.clone()).unwrap_or_default();
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    body,
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.wait())
        .await
}

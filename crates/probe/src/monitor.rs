//! The monitor: probe rounds on a schedule, alarms from them, notifications by log, mail and
//! webhook, restarts noticed from the daemons' start times, and the latest round for
//! `/metrics`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use mailfleet_core::Config;

use crate::alarm::{Alarms, Kind, Notification, Policy};
use crate::metrics;
use crate::outcome::{Outcome, State};
use crate::plan::{Plan, run};

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
}

/// The PID in a PID file and that process's start time: a restart changes the pair.
pub fn daemon(pid_file: &std::path::Path) -> Option<(i32, u64)> {
    let pid = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse::<i32>()
        .ok()?;
    Some((pid, start_time(pid)?))
}

/// The start time (clock ticks since boot) of a process, from /proc/PID/stat field 22.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    // Fields after the command name start at field 3 (state); starttime is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
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
            config,
            plan,
            alarms: Alarms::new(policy),
            started: HashMap::new(),
            latest: Latest::default(),
            history,
        })
    }

    /// The latest round for `/metrics`.
    pub fn latest(&self) -> Latest {
        Arc::clone(&self.latest)
    }

    fn restarts(&mut self) -> Vec<Notification> {
        let mut out = Vec::new();
        for s in &self.config.fleet.servers {
            let Some(pid_file) = &s.pid_file else {
                continue;
            };
            let now = daemon(pid_file);
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
        let outcomes = run(&self.config, &self.plan).await;
        let mut notes = self.alarms.observe(&outcomes, Instant::now());
        notes.extend(self.restarts());
        if let Ok(mut l) = self.latest.write() {
            *l = metrics::render(&outcomes);
        }
        let retention = self.config.monitor.retention;
        // A local SQLite insert per round: short enough to do in place.
        if let Some(h) = &mut self.history
            && let Err(e) = h.record(chrono::Utc::now(), &outcomes, retention)
        {
            tracing::error!("recording the round: {e}");
        }
        for n in &notes {
            self.send(n).await;
        }
        (outcomes, notes)
    }

    async fn send(&self, n: &Notification) {
        crate::notify::send(&self.config, n).await;
    }
}

/// Serves `GET /metrics` with the latest round until the listener's task is dropped.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    latest: Latest,
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
    axum::serve(listener, app).await
}

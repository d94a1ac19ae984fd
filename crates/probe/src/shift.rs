//! The shift check: the operators' per-shift list at once. All servers answer (a full probe
//! round), queues and disks are within limits, no daemon restarted on its own and none is
//! down, and the mail logs hold no new errors since the last shift check. It prints only what
//! needs a human, and remembers where it stopped (`DATA_DIR/shift-state.json`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use mailfleet_core::Config;
use mailfleet_core::follow::Place;
use mailfleet_core::follow_remote::LogFollower;
use mailfleet_maillog::event::Kind;
use serde::{Deserialize, Serialize};

use crate::outcome::{Outcome, State};
use crate::plan::{Plan, PlanError, run as probe_round};

/// Log bytes read per shift check at most, per file: a first run on a huge log reads its tail.
const MAX_LOG_READ: u64 = 256 << 20;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    last_run: Option<DateTime<Utc>>,
    daemons: BTreeMap<String, (i32, u64)>,
    /// Where each log was read up to.
    #[serde(default)]
    logs: BTreeMap<String, Place>,
}

/// Something a human should look at.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// How bad.
    pub state: State,
    /// What.
    pub what: String,
}

/// The shift check's result.
#[derive(Debug, Clone, Serialize)]
pub struct ShiftReport {
    /// When the previous shift check ran.
    pub since: Option<DateTime<Utc>>,
    /// What needs a human, worst first.
    pub findings: Vec<Finding>,
    /// Every check of the probe round.
    pub outcomes: Vec<Outcome>,
}

/// Why the shift check could not run.
#[derive(Debug, thiserror::Error)]
pub enum ShiftError {
    /// The probe plan failed.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The state file could not be written.
    #[error("{path}: {message}")]
    State {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Problems in new log lines, as findings.
fn log_findings(name: &str, bytes: &[u8]) -> Vec<Finding> {
    let mut problems: BTreeMap<(&'static str, &'static str), u64> = BTreeMap::new();
    let mut failed_logins = 0u64;
    let mut hosts = mailfleet_maillog::Hosts::default();
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match mailfleet_maillog::classify_line(line, &mut hosts).kind {
            Kind::Problem { service, level } => *problems.entry((level, service)).or_insert(0) += 1,
            Kind::LoginFailed { .. } => failed_logins += 1,
            _ => {}
        }
    }
    let mut out = Vec::new();
    let mut by_level: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for ((level, service), n) in &problems {
        by_level
            .entry(level)
            .or_default()
            .push(format!("{service} {n}"));
    }
    for (level, services) in by_level {
        let state = if matches!(level, "fatal" | "panic") {
            State::Critical
        } else {
            State::Warning
        };
        out.push(Finding {
            state,
            what: format!(
                "{name}: new Postfix {level} lines ({})",
                services.join(", ")
            ),
        });
    }
    if failed_logins > 0 {
        out.push(Finding {
            state: State::Warning,
            what: format!("{name}: {failed_logins} failed IMAP/POP3 logins"),
        });
    }
    out
}

/// Runs the shift check and records where it stopped.
pub async fn run(config: &Config) -> Result<ShiftReport, ShiftError> {
    let state_file = config.data_dir.join("shift-state.json");
    let saved: Saved = match std::fs::read_to_string(&state_file) {
        Ok(t) => serde_json::from_str(&t).unwrap_or_else(|e| {
            // Only costs reading the logs again from their start: say so, go on.
            tracing::warn!("{}: {e}: starting afresh", state_file.display());
            Saved::default()
        }),
        Err(_) => Saved::default(),
    };
    let plan = Plan::new(config, &[])?;
    let outcomes = probe_round(config, &plan).await;
    let mut findings: Vec<Finding> = outcomes
        .iter()
        .filter(|o| o.state != State::Ok)
        .map(|o| Finding {
            state: o.state,
            what: format!("{} {}: {} {}", o.server, o.check, o.state, o.message),
        })
        .collect();
    let mut next = Saved {
        last_run: Some(Utc::now()),
        ..Default::default()
    };
    let servers: Vec<&mailfleet_core::Server> = config
        .fleet
        .servers
        .iter()
        .filter(|s| s.pid_file.is_some())
        .collect();
    let read = futures::future::join_all(
        servers
            .iter()
            .map(|s| crate::daemon::daemon(plan.reach(), s, config.probe.timeout)),
    )
    .await;
    for (s, now) in servers.into_iter().zip(read) {
        let pid_file = s.pid_file.as_deref().unwrap_or(std::path::Path::new(""));
        let now = match now {
            Ok(crate::daemon::Daemon::Running(pid, start)) => Some((pid, start)),
            Ok(crate::daemon::Daemon::NotRunning) => None,
            Err(e) => {
                findings.push(Finding {
                    state: State::Unknown,
                    what: format!("{}: restarts not known: {e}", s.name),
                });
                if let Some(before) = saved.daemons.get(&s.name) {
                    next.daemons.insert(s.name.clone(), *before);
                }
                continue;
            }
        };
        match (now, saved.daemons.get(&s.name)) {
            (None, _) => findings.push(Finding {
                state: State::Critical,
                what: format!(
                    "{}: its daemon is not running ({})",
                    s.name,
                    pid_file.display()
                ),
            }),
            (Some(now), Some(before)) if now != *before => {
                findings.push(Finding {
                    state: State::Warning,
                    what: format!(
                        "{}: restarted since the last shift check (PID {}, was {})",
                        s.name, now.0, before.0
                    ),
                });
                next.daemons.insert(s.name.clone(), now);
            }
            (Some(now), _) => {
                next.daemons.insert(s.name.clone(), now);
            }
        }
    }
    // `[shift] logs` here, and each server's own logs where they are (patterns name rotated
    // sets, not a live log to follow): all at once, each under its own name.
    let mut logs: Vec<(String, LogFollower)> = Vec::new();
    for l in &config.shift_logs {
        let key = l.display().to_string();
        let place = saved.logs.get(&key).copied().unwrap_or_default();
        let f = LogFollower::resume("local", &mailfleet_remote::Access::Local, l, place);
        logs.push((key, f));
    }
    for s in &config.fleet.servers {
        for l in s.live_logs() {
            let key = match s.access {
                mailfleet_remote::Access::Local => l.display().to_string(),
                mailfleet_remote::Access::Ssh(_) => format!("{}:{}", s.name, l.display()),
            };
            if logs.iter().any(|(k, _)| *k == key) {
                continue;
            }
            let place = saved.logs.get(&key).copied().unwrap_or_default();
            logs.push((key, LogFollower::resume(&s.name, &s.access, l, place)));
        }
    }
    let reach = plan.reach();
    let deadline = config.probe.timeout.max(std::time::Duration::from_secs(30));
    let read = futures::future::join_all(logs.iter_mut().map(|(key, f)| async move {
        let read = f.poll(reach, MAX_LOG_READ, true, deadline).await;
        let read = match read {
            // A log that is not there is a config to fix, not a quiet shift.
            Ok(_) if f.missing() => Err(format!("{key}: no such file")),
            r => r.map_err(|e| e.to_string()),
        };
        (key.clone(), f.place(), read)
    }))
    .await;
    let mut log_findings_all = Vec::new();
    let mut read_places = BTreeMap::new();
    for (key, place, read) in read {
        match read {
            Ok(bytes) => {
                log_findings_all.extend(log_findings(&key, &bytes));
                read_places.insert(key, place);
            }
            Err(e) => {
                log_findings_all.push(Finding {
                    state: State::Unknown,
                    what: e,
                });
                // Read from the same place next time.
                if let Some(before) = saved.logs.get(&key) {
                    read_places.insert(key, *before);
                }
            }
        }
    }
    findings.extend(log_findings_all);
    next.logs = read_places;
    findings.sort_by_key(|f| std::cmp::Reverse(f.state));
    let text = serde_json::to_string_pretty(&next).map_err(|e| ShiftError::State {
        path: state_file.clone(),
        message: e.to_string(),
    })?;
    std::fs::create_dir_all(&config.data_dir)
        .and_then(|_| std::fs::write(&state_file, text))
        .map_err(|e| ShiftError::State {
            path: state_file,
            message: e.to_string(),
        })?;
    Ok(ShiftReport {
        since: saved.last_run,
        findings,
        outcomes,
    })
}

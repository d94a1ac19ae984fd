//! The upgrade plan: every server in its place with the reason for it, the gates it waits on
//! before and after its update, how a store is emptied, and a timeline (from an injected
//! clock) that keeps each role's spacing, each canary's soak and the maintenance windows.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use mailfleet_core::config::{Drain, UpgradeConfig};
use mailfleet_core::{Fleet, Role, Server};
use serde::Serialize;

use crate::error::PlanError;
use crate::order::{Rank, ordered};
use crate::window;

/// What a plan is made from besides the config.
#[derive(Debug, Clone)]
pub struct PlanInput {
    /// Now, as the timeline starts.
    pub now: DateTime<Utc>,
    /// Only these servers (empty: the whole fleet).
    pub servers: Vec<String>,
    /// Only these packages (empty: everything the package manager offers).
    pub packages: Vec<String>,
    /// Each store's newest good backup, as far as known (`Err`: why it is not).
    pub backups: BTreeMap<String, Result<Option<DateTime<Utc>>, String>>,
}

/// One server's update.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Its place, from 1.
    pub n: usize,
    /// The server.
    pub server: String,
    /// Where in the order it goes.
    pub rank: Rank,
    /// Its redundancy group.
    pub group: Option<String>,
    /// Updated first in its role and watched.
    pub canary: bool,
    /// Why it goes here.
    pub why: String,
    /// What must hold before it is touched.
    pub before: Vec<String>,
    /// How it is emptied first, if it is a store.
    pub drain: Option<String>,
    /// What must hold after its update before the next server.
    pub after: Vec<String>,
    /// When it starts at the earliest.
    pub start: DateTime<Utc>,
    /// Why it starts then and not at once.
    pub waits: Vec<String>,
}

/// The whole plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Every step, in order.
    pub steps: Vec<Step>,
    /// Packages to update (empty: all).
    pub packages: Vec<String>,
    /// The windows' time zone.
    pub timezone: String,
    /// The windows, described.
    pub windows: Vec<String>,
    /// When the last step ends at the earliest.
    pub ends: DateTime<Utc>,
    /// What an admin should know: servers without redundancy.
    pub warnings: Vec<String>,
}

/// A duration as `1 h`, `10 min` or `30 s`.
pub fn mins(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s >= 3600 && s % 3600 == 0 => format!("{} h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

fn dur(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// The gates before a server's update, and the warning if it has no redundancy.
fn before(
    s: &Server,
    fleet: &Fleet,
    cfg: &UpgradeConfig,
    input: &PlanInput,
) -> Result<(Vec<String>, Option<String>), PlanError> {
    let mut gates = vec!["every probe of the fleet OK".to_string()];
    let mut warning = None;
    match s
        .group
        .as_ref()
        .and_then(|g| fleet.groups.get(g).map(|m| (g, m)))
    {
        Some((g, members)) if members.len() > 1 => {
            let size = members.len();
            let min_up = cfg.min_up.get(g).copied().unwrap_or(size - 1);
            if min_up > size - 1 {
                return Err(PlanError::MinUp {
                    group: g.clone(),
                    min_up,
                    size,
                });
            }
            let others: Vec<&str> = members
                .iter()
                .map(String::as_str)
                .filter(|m| *m != s.name)
                .collect();
            gates.push(format!(
                "group {g}: {} OK (at least {min_up} of {size} up while {} is down)",
                others.join(", "),
                s.name
            ));
        }
        _ => {
            warning = Some(match Rank::of(s) {
                Rank::Store => format!(
                    "{}: a store is never redundant: its users wait while it is down (drain it)",
                    s.name
                ),
                _ => format!(
                    "{}: no redundancy group: its service is down during its update",
                    s.name
                ),
            });
        }
    }
    match Rank::of(s) {
        Rank::DirectoryMaster => {
            let replicas: Vec<&str> = fleet
                .servers
                .iter()
                .filter(|r| r.replica_of.as_deref() == Some(s.name.as_str()))
                .map(|r| r.name.as_str())
                .collect();
            if !replicas.is_empty() {
                gates.push(format!("replicas {} in sync with it", replicas.join(", ")));
            }
        }
        Rank::DirectoryReplica => {
            if let Some(m) = &s.replica_of {
                gates.push(format!(
                    "in sync with {m} (lag within {})",
                    mins(s.replica_max_lag)
                ));
            }
        }
        Rank::Store => {
            gates.push(format!("no backup of {} running", s.name));
            let limit = dur(cfg.backup_max_age);
            gates.push(match input.backups.get(&s.name) {
                Some(Ok(Some(t))) if input.now - *t <= limit => format!(
                    "a good backup newer than {} (the last: {})",
                    mins(cfg.backup_max_age),
                    t.format("%Y-%m-%d %H:%M UTC")
                ),
                Some(Ok(Some(t))) => format!(
                    "a backup of it right before (the last good one, {}, is older than {})",
                    t.format("%Y-%m-%d %H:%M UTC"),
                    mins(cfg.backup_max_age)
                ),
                Some(Ok(None)) => "a backup of it right before (none has succeeded yet)".into(),
                Some(Err(e)) => format!("a backup of it right before (its status: {e})"),
                None => "a backup of it right before (no backup status configured)".into(),
            });
        }
        Rank::Mta | Rank::Proxy => {}
    }
    Ok((gates, warning))
}

fn after(s: &Server, cfg: &UpgradeConfig) -> Vec<String> {
    let mut v = vec![format!("every probe OK for {}", mins(cfg.soak))];
    if s.canary {
        v.push(format!(
            "a canary: watched {} before the rest of its role",
            mins(cfg.canary_soak)
        ));
    }
    if Rank::of(s) == Rank::Store {
        v.push("a backup of it right after (a baseline at the new version)".into());
        v.push(match s.drain.unwrap_or(cfg.drain) {
            Drain::Move => format!("its mailboxes moved back (move back {})", s.name),
            Drain::Queue => "the mail queued for it flushed".into(),
        });
    }
    v
}

fn drain(s: &Server, cfg: &UpgradeConfig) -> Option<String> {
    (Rank::of(s) == Rank::Store).then(|| match s.drain.unwrap_or(cfg.drain) {
        Drain::Move => format!(
            "its mailboxes moved to the other stores first (move drain {})",
            s.name
        ),
        Drain::Queue => {
            "its inbound mail deferred at the MTAs while it is down (drain = \"queue\"), nothing bounced"
                .into()
        }
    })
}

/// The plan for `fleet` under `cfg`.
pub fn plan(fleet: &Fleet, cfg: &UpgradeConfig, input: &PlanInput) -> Result<Plan, PlanError> {
    for s in &input.servers {
        if fleet.server(s).is_none() {
            return Err(PlanError::UnknownServer(s.clone()));
        }
    }
    let chosen = fleet
        .servers
        .iter()
        .filter(|s| input.servers.is_empty() || input.servers.contains(&s.name));
    let servers = ordered(chosen);
    if servers.is_empty() {
        return Err(PlanError::Empty);
    }
    let tz = cfg.timezone;
    let mut t = input.now;
    let mut last_end: BTreeMap<Role, (DateTime<Utc>, &str)> = BTreeMap::new();
    let mut canary_until: BTreeMap<Role, (DateTime<Utc>, &str)> = BTreeMap::new();
    let mut steps = Vec::with_capacity(servers.len());
    let mut warnings = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        let rank = Rank::of(s);
        let role = rank.role();
        let (gates, warning) = before(s, fleet, cfg, input)?;
        warnings.extend(warning);
        let mut start = t;
        let mut waits = Vec::new();
        if let (Some((end, prev)), Some(sp)) = (last_end.get(&role), cfg.spacing.get(&role))
            && *end + dur(*sp) > start
        {
            start = *end + dur(*sp);
            waits.push(format!("{} after {prev} ({role} spacing)", mins(*sp)));
        }
        if let Some((until, c)) = canary_until.get(&role)
            && !s.canary
            && *until > start
        {
            start = *until;
            waits.push(format!(
                "the canary {c} watched for {}",
                mins(cfg.canary_soak)
            ));
        }
        let open = window::next_open(&cfg.windows, tz, start);
        if open > start {
            waits.push(format!(
                "the next maintenance window ({})",
                open.with_timezone(&tz).format("%a %Y-%m-%d %H:%M %Z")
            ));
            start = open;
        }
        let end = start + dur(cfg.estimate) + dur(cfg.soak);
        last_end.insert(role, (end, s.name.as_str()));
        if s.canary {
            canary_until.insert(role, (end + dur(cfg.canary_soak), s.name.as_str()));
        }
        t = end;
        let why = if s.canary {
            format!("{}; a canary, first of its role", rank.why())
        } else {
            rank.why().to_string()
        };
        steps.push(Step {
            n: i + 1,
            server: s.name.clone(),
            rank,
            group: s.group.clone(),
            canary: s.canary,
            why,
            before: gates,
            drain: drain(s, cfg),
            after: after(s, cfg),
            start,
            waits,
        });
    }
    Ok(Plan {
        steps,
        packages: input.packages.clone(),
        timezone: tz.name().to_string(),
        windows: cfg.windows.iter().map(window::describe).collect(),
        ends: t,
        warnings,
    })
}

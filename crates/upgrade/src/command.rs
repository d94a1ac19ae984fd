//! The upgrade commands on a loaded config: `upgrade plan` (each store's newest good backup
//! read from its status file, under a deadline: it may live on a mount that hangs, then
//! [`crate::plan`]) and `upgrade holds`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mailfleet_core::backup_status::BackupStatus;
use mailfleet_core::{Config, Role};

use crate::{Plan, PlanError, PlanInput};

/// How long a backup status file may take to read.
const STATUS_DEADLINE: Duration = Duration::from_secs(5);

/// A store's newest good backup from its status file (`None`: none yet).
pub async fn last_good(path: &std::path::Path) -> Result<Option<DateTime<Utc>>, String> {
    let read = tokio::time::timeout(STATUS_DEADLINE, tokio::fs::read_to_string(path))
        .await
        .map_err(|_| format!("{}: no answer within 5 s", path.display()))?;
    let text = match read {
        Ok(t) => t,
        // No backup has ever run there: the same as none succeeded (one is taken first).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    serde_json::from_str::<BackupStatus>(&text)
        .map(|s| s.last_success)
        .map_err(|e| format!("{}: unreadable: {e}", path.display()))
}

/// The plan for `servers` (empty: all) updating `packages` (empty: all), from `now`.
pub async fn plan(
    config: &Config,
    servers: Vec<String>,
    packages: Vec<String>,
    now: DateTime<Utc>,
) -> Result<Plan, PlanError> {
    let mut backups = BTreeMap::new();
    for s in &config.fleet.servers {
        if s.has_role(Role::Mailbox)
            && let Some(path) = &s.backup_status
        {
            backups.insert(s.name.clone(), last_good(path).await);
        }
    }
    let input = PlanInput {
        now,
        servers,
        packages,
        backups,
    };
    crate::plan(&config.fleet, &config.upgrade, &input)
}

/// What `upgrade holds` writes.
#[derive(Debug, serde::Serialize)]
pub struct Holds {
    /// The syntax.
    pub format: crate::holds::Format,
    /// The patterns held.
    pub patterns: Vec<String>,
    /// The snippet for the tool's config file.
    pub snippet: String,
    /// Each server's automatic reboot slot.
    pub reboots: Vec<crate::reboots::Reboot>,
    /// How long each slot is (s).
    pub slot_secs: u64,
    /// The windows' time zone, which the reboot times are in.
    pub timezone: String,
    /// Slots that run past a day.
    pub warning: Option<String>,
}

/// The holds and reboot times for the config's fleet.
pub fn holds(config: &Config, format: crate::holds::Format) -> Holds {
    let u = &config.upgrade;
    let (reboots, warning) = crate::reboots::reboot_times(&config.fleet, u);
    Holds {
        format,
        patterns: u.managed.clone(),
        snippet: crate::holds::render(format, &u.managed),
        reboots,
        slot_secs: u.reboot_slot.as_secs(),
        timezone: u.timezone.name().to_string(),
        warning,
    }
}

/// `upgrade holds --check` on `servers` (empty: every server).
pub async fn check(
    config: &Config,
    servers: &[String],
) -> Result<Vec<crate::check::ServerCheck>, PlanError> {
    if let Some(s) = servers
        .iter()
        .find(|s| config.fleet.server(s.as_str()).is_none())
    {
        return Err(PlanError::UnknownServer(s.clone()));
    }
    let chosen: Vec<&mailfleet_core::Server> = config
        .fleet
        .servers
        .iter()
        .filter(|s| servers.is_empty() || servers.contains(&s.name))
        .collect();
    let reach = mailfleet_remote::Reach::new();
    Ok(crate::check::check(&reach, &chosen, &config.upgrade.managed).await)
}

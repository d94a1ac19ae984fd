//! `upgrade holds --check`: on each server, the package manager's own simulation of a full
//! upgrade (after refreshing its lists), and what in it slips past the holds: a held package
//! with an update waiting (for `upgrade run`), and, worse, a package the OS would still upgrade
//! by itself although it depends on a held one (unattended-upgrades upgrades the dependencies
//! of a blacklisted package, bug #290, dragging the held one along).

use std::time::Duration;

use mailfleet_core::Server;
use mailfleet_remote::{Cmd, Reach};
use serde::Serialize;

use crate::apt::{Inst, argv, parse_depends, parse_inst};
use crate::holds::matches;

/// Each apt command's deadline (lists are fetched from the server's mirrors).
const DEADLINE: Duration = Duration::from_secs(300);

/// What slipped past the holds on one server.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// A held package has an update: only `upgrade run` should apply it.
    Held {
        /// The package and versions.
        #[serde(flatten)]
        inst: Inst,
    },
    /// A package that is not held would be upgraded and depends on a held one.
    DependsOnHeld {
        /// The package and versions.
        #[serde(flatten)]
        inst: Inst,
        /// The held packages its new version depends on.
        held: Vec<String>,
    },
}

/// One server's check.
#[derive(Debug, Clone, Serialize)]
pub struct ServerCheck {
    /// The server.
    pub server: String,
    /// Packages a full upgrade would install there.
    pub upgrades: usize,
    /// What slipped past the holds.
    pub findings: Vec<Finding>,
    /// Why the check could not run there.
    pub error: Option<String>,
}

/// The exit code of `holds --check` over these servers, as a monitoring check reads it: 3 when
/// a server could not be checked, 1 when a package would upgrade past a hold, else 0.
pub fn exit_code(checked: &[ServerCheck]) -> u8 {
    if checked.iter().any(|c| c.error.is_some()) {
        3
    } else if checked
        .iter()
        .flat_map(|c| &c.findings)
        .any(|f| matches!(f, Finding::DependsOnHeld { .. }))
    {
        1
    } else {
        0
    }
}

fn held(patterns: &[String], package: &str) -> bool {
    patterns.iter().any(|p| matches(p, package))
}

/// `tool` with `args` on `s` through its access; its output.
pub(crate) async fn apt(
    reach: &Reach,
    s: &Server,
    tool: &str,
    args: &[&str],
) -> Result<String, String> {
    let cmd = Cmd::new(argv(s, tool, args)).deadline(DEADLINE);
    reach
        .check(&s.name, &s.access, &cmd)
        .await
        .map(|o| o.stdout_text())
        .map_err(|e| e.to_string())
}

async fn findings(
    reach: &Reach,
    s: &Server,
    patterns: &[String],
) -> Result<(usize, Vec<Finding>), String> {
    apt(reach, s, "apt-get", &["-q", "update"]).await?;
    let sim = apt(reach, s, "apt-get", &["-s", "-q", "dist-upgrade"]).await?;
    let inst = parse_inst(&sim);
    let (held_now, others): (Vec<Inst>, Vec<Inst>) = inst
        .iter()
        .cloned()
        .partition(|i| held(patterns, &i.package));
    let mut out: Vec<Finding> = held_now
        .into_iter()
        .map(|inst| Finding::Held { inst })
        .collect();
    if !others.is_empty() {
        let wanted: Vec<String> = others
            .iter()
            .map(|i| format!("{}={}", i.package, i.to))
            .collect();
        let mut args = vec!["show"];
        args.extend(wanted.iter().map(String::as_str));
        let deps = parse_depends(&apt(reach, s, "apt-cache", &args).await?);
        for i in others {
            let on: Vec<String> = deps
                .get(&(i.package.clone(), i.to.clone()))
                .into_iter()
                .flatten()
                .filter(|d| held(patterns, d))
                .cloned()
                .collect();
            if !on.is_empty() {
                out.push(Finding::DependsOnHeld { inst: i, held: on });
            }
        }
    }
    Ok((inst.len(), out))
}

/// Checks `servers` against `patterns`, all at once.
pub async fn check(reach: &Reach, servers: &[&Server], patterns: &[String]) -> Vec<ServerCheck> {
    let runs = servers.iter().map(|s| async move {
        match findings(reach, s, patterns).await {
            Ok((upgrades, findings)) => ServerCheck {
                server: s.name.clone(),
                upgrades,
                findings,
                error: None,
            },
            Err(e) => ServerCheck {
                server: s.name.clone(),
                upgrades: 0,
                findings: Vec::new(),
                error: Some(e),
            },
        }
    });
    futures::future::join_all(runs).await
}

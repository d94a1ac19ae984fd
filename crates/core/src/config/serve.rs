//! `[serve]`: which parts `mailfleet serve` runs in its one process.

use serde::{Deserialize, Serialize};

use super::validate::Problems;

/// A part of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServePart {
    /// The monitor's probe rounds, alarms and `/metrics`.
    Monitor,
    /// The policy server, milter, release loop and log follower.
    Policy,
}

impl ServePart {
    /// Its name in the config and the log.
    pub fn as_str(self) -> &'static str {
        match self {
            ServePart::Monitor => "monitor",
            ServePart::Policy => "policy",
        }
    }
}

/// How `mailfleet serve` runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServeConfig {
    /// The parts it runs (each once, in this order).
    pub parts: Vec<ServePart>,
}

/// `[serve]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServe {
    pub(crate) parts: Option<Vec<ServePart>>,
}

/// Checks `[serve]`: the parts named once each (default: the monitor and the policy server).
pub(crate) fn serve(r: &RawServe, p: &mut Problems) -> ServeConfig {
    let parts = r
        .parts
        .clone()
        .unwrap_or_else(|| vec![ServePart::Monitor, ServePart::Policy]);
    let mut seen = std::collections::BTreeSet::new();
    for (i, part) in parts.iter().enumerate() {
        if !seen.insert(*part) {
            p.add(
                format!("serve.parts[{i}]"),
                format!("{:?} is named twice", part.as_str()),
            );
        }
    }
    if parts.is_empty() {
        p.add("serve.parts", "names no part (monitor, policy)");
    }
    ServeConfig { parts }
}

//! Staggered times for the OS's own automatic reboots (unattended-upgrades'
//! `Automatic-Reboot-Time`, or a reboot window elsewhere), so that even the reboots a server
//! does by itself follow the upgrade order: the directory servers first, one at a time and
//! their spacing apart; then MTAs and proxies; then stores; and never two servers of one
//! group in one slot.

use std::collections::BTreeMap;

use chrono::NaiveTime;
use mailfleet_core::Fleet;
use mailfleet_core::config::UpgradeConfig;
use serde::Serialize;

use crate::order::{Rank, ordered};

/// One server's reboot slot.
#[derive(Debug, Clone, Serialize)]
pub struct Reboot {
    /// The server.
    pub server: String,
    /// Its place in the order.
    pub rank: Rank,
    /// Its group.
    pub group: Option<String>,
    /// Its slot, from 0.
    pub slot: u32,
    /// When it may reboot (local time of the windows' time zone).
    pub at: NaiveTime,
}

/// The stages reboots go in: directory servers, then MTAs and proxies, then stores.
fn stage(rank: Rank) -> u8 {
    match rank {
        Rank::DirectoryMaster | Rank::DirectoryReplica => 0,
        Rank::Mta | Rank::Proxy => 1,
        Rank::Store => 2,
    }
}

/// Every server's reboot slot, and a warning when the slots run past a day.
pub fn reboot_times(fleet: &Fleet, cfg: &UpgradeConfig) -> (Vec<Reboot>, Option<String>) {
    let slot_secs = cfg.reboot_slot.as_secs().max(60);
    let step = |role| {
        let spacing = cfg.spacing.get(&role).map_or(0, |d| d.as_secs());
        spacing.div_ceil(slot_secs).max(1) as u32
    };
    let mut out = Vec::new();
    let mut floor = 0u32;
    let mut current_stage = None;
    let mut stage_end = 0u32;
    // Per group in the current stage: the slot its last member took.
    let mut taken: BTreeMap<&str, u32> = BTreeMap::new();
    let mut last_directory: Option<u32> = None;
    for s in ordered(&fleet.servers) {
        let rank = Rank::of(s);
        if current_stage != Some(stage(rank)) {
            if current_stage.is_some() {
                floor = stage_end + 1;
            }
            current_stage = Some(stage(rank));
            taken.clear();
        }
        let slot = if stage(rank) == 0 {
            // One directory server at a time, their spacing apart.
            last_directory.map_or(floor, |l| l + step(rank.role()))
        } else {
            match s.group.as_deref() {
                Some(g) => taken.get(g).map_or(floor, |l| l + step(rank.role())),
                None => floor,
            }
        };
        if stage(rank) == 0 {
            last_directory = Some(slot);
        }
        if let Some(g) = s.group.as_deref() {
            taken.insert(g, slot);
        }
        stage_end = stage_end.max(slot);
        let offset = chrono::Duration::seconds(i64::from(slot) * slot_secs as i64);
        out.push(Reboot {
            server: s.name.clone(),
            rank,
            group: s.group.clone(),
            slot,
            at: cfg.reboot_from + offset,
        });
    }
    let span = u64::from(stage_end + 1) * slot_secs;
    let warning = (span > 86_400).then(|| {
        format!(
            "the reboot slots take {:.1} h, more than a day: some share a time of day with earlier ones (make reboot_slot shorter)",
            span as f64 / 3600.0
        )
    });
    (out, warning)
}

//! Keeping the repository in shape: `forget` drops snapshots by a daily/weekly/monthly
//! policy, `prune` deletes the blobs no snapshot references (under an exclusive lock, so a
//! running backup is never robbed), and `diff` says what changed between two snapshots.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::Datelike;
use serde::Serialize;

use crate::error::BackupError;
use crate::id::BlobId;
use crate::lock::Lock;
use crate::recipe::Recipe;
use crate::repo::Repository;
use crate::snapshot::{AccountTree, Snapshot};

/// How many snapshots to keep.
#[derive(Debug, Clone, Copy, Default)]
pub struct Keep {
    /// The newest N snapshots.
    pub last: usize,
    /// The newest snapshot of each of the last N days that have one.
    pub daily: usize,
    /// ...of each of the last N ISO weeks.
    pub weekly: usize,
    /// ...of each of the last N months.
    pub monthly: usize,
}

/// Which snapshots a policy keeps and forgets.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ForgetPlan {
    /// Kept, newest first.
    pub keep: Vec<String>,
    /// Forgotten, newest first.
    pub forget: Vec<String>,
}

/// The period a snapshot falls in: (year, day/week/month).
type Bucket = dyn Fn(&Snapshot) -> (i32, u32);

/// Messages of an account by (folder, base name): their recipe and flags.
type MessageMap = BTreeMap<(String, String), (BlobId, String)>;

/// Applies the policy to each group of snapshots taken of the same stores.
pub fn plan_forget(snapshots: &[Snapshot], keep: Keep) -> ForgetPlan {
    let mut groups: BTreeMap<BTreeSet<&str>, Vec<&Snapshot>> = BTreeMap::new();
    for s in snapshots {
        let key = s.accounts.iter().map(|a| a.server.as_str()).collect();
        groups.entry(key).or_default().push(s);
    }
    let mut plan = ForgetPlan::default();
    for (_, mut group) in groups {
        group.sort_by_key(|s| std::cmp::Reverse(s.time));
        let mut kept: HashSet<&str> = HashSet::new();
        kept.extend(group.iter().take(keep.last).map(|s| s.id.as_str()));
        let buckets: [(usize, &Bucket); 3] = [
            (keep.daily, &|s: &Snapshot| {
                (s.time.year(), s.time.ordinal())
            }),
            (keep.weekly, &|s: &Snapshot| {
                let w = s.time.iso_week();
                (w.year(), w.week())
            }),
            (keep.monthly, &|s: &Snapshot| {
                (s.time.year(), s.time.month())
            }),
        ];
        for (n, bucket) in buckets {
            let mut seen = Vec::new();
            for s in &group {
                let b = bucket(s);
                if seen.len() >= n {
                    break;
                }
                if !seen.contains(&b) {
                    seen.push(b);
                    kept.insert(s.id.as_str());
                }
            }
        }
        for s in group {
            if kept.contains(s.id.as_str()) {
                plan.keep.push(s.id.clone());
            } else {
                plan.forget.push(s.id.clone());
            }
        }
    }
    plan
}

/// Forgets snapshots by the policy (their blobs stay until `prune`).
pub fn forget(repo: &Repository, keep: Keep, dry_run: bool) -> Result<ForgetPlan, BackupError> {
    let plan = plan_forget(&repo.snapshots()?, keep);
    if !dry_run {
        for id in &plan.forget {
            repo.forget_snapshot(id)?;
        }
    }
    Ok(plan)
}

/// What prune did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// Blobs referenced by the remaining snapshots.
    pub referenced: u64,
    /// Blobs deleted.
    pub deleted: u64,
    /// Packs deleted (nothing in them used, or not indexed).
    pub packs_deleted: u64,
    /// Packs rewritten without their unused blobs.
    pub packs_rewritten: u64,
    /// Unused blobs left in place: their packs are mostly in use (under 20% unused).
    pub unused_kept: u64,
    /// Leftovers of interrupted writes removed.
    pub temporary_files: u64,
}

/// Every blob the snapshots reference.
fn referenced(repo: &Repository) -> Result<HashSet<BlobId>, BackupError> {
    let mut used = HashSet::new();
    for snap in repo.snapshots()? {
        for account in &snap.accounts {
            if !used.insert(account.tree) {
                continue;
            }
            let tree: AccountTree = repo.get_json(&account.tree)?;
            for m in tree.folders.iter().flat_map(|f| &f.messages) {
                if used.insert(m.recipe) {
                    let recipe: Recipe = crate::recipe::load(repo, &m.recipe)?;
                    used.extend(crate::recipe::blobs(&recipe).copied());
                }
            }
        }
    }
    Ok(used)
}

/// A pack with at least this share of unused bytes is rewritten; below it, the space is left
/// (rewriting 16 MiB to win little is not worth the I/O).
const REPACK_UNUSED_PERCENT: u64 = 20;
/// A pack smaller than this (the last of a run) is rewritten whenever it holds unused blobs.
const REPACK_SMALL: u64 = 1 << 20;

/// Copies a pack's live objects (as stored: no decryption needed) into new packs, indexes them,
/// then removes the old pack. A group with unused members is opened and its live members
/// grouped anew, so what is forgotten is gone from the repository. A crash in between leaves
/// the blobs in both, which is harmless.
fn repack(repo: &Repository, pack: &str, live: &[(BlobId, u64, u32)]) -> Result<(), BackupError> {
    let used: HashSet<BlobId> = live.iter().map(|(id, _, _)| *id).collect();
    // Members of a group share its place: one object per place.
    let mut places: BTreeMap<u64, Vec<BlobId>> = BTreeMap::new();
    for (id, offset, _) in live {
        places.entry(*offset).or_default().push(*id);
    }
    let mut objects = Vec::new();
    let mut members = Vec::new();
    for ids in places.into_values() {
        let object = repo.get_object(&ids[0])?;
        if !crate::repo_groups::is_group(&object) {
            objects.push((ids, object));
            continue;
        }
        let group = repo
            .open_group(&object)
            .map_err(|e| BackupError::Corrupt(format!("pack {pack}: {e}")))?;
        if group.ids().all(|m| used.contains(m)) {
            objects.push((ids, object));
            continue;
        }
        for id in ids {
            let content = group
                .content(&id)
                .filter(|c| repo.id_of(c) == id)
                .ok_or_else(|| BackupError::Corrupt(format!("blob {id}: damaged in its group")))?;
            members.push((group.kind, id, content.to_vec()));
        }
    }
    repo.unindex_pack(pack);
    let mut stats = crate::repo::PutStats::default();
    for (ids, object) in objects {
        repo.add_placed(&ids, &object)?;
    }
    for (kind, id, content) in members {
        repo.add_member(kind, id, &content, &mut stats)?;
    }
    repo.flush()?;
    repo.delete_pack(pack)
}

/// The bytes each blob of a pack takes: a group's are shared among its members.
fn shares(blobs: &[(BlobId, u64, u32)]) -> Vec<u64> {
    let mut at: BTreeMap<u64, u64> = BTreeMap::new();
    for (_, offset, _) in blobs {
        *at.entry(*offset).or_default() += 1;
    }
    blobs
        .iter()
        .map(|(_, offset, len)| u64::from(*len) / at.get(offset).copied().unwrap_or(1).max(1))
        .collect()
}

/// Deletes unreferenced blobs and leftovers of interrupted writes, under an exclusive lock.
/// A snapshot that cannot be read stops the prune: deleting on a partial view would lose data.
pub fn prune(repo: &Repository, dry_run: bool) -> Result<PruneReport, BackupError> {
    let _lock = Lock::exclusive(repo)?;
    repo.reload_index()?;
    let damaged = repo.damaged_indexes();
    if !damaged.is_empty() {
        return Err(BackupError::Corrupt(format!(
            "prune refused: {} index segments cannot be read ({}); deleting on a partial view would lose data",
            damaged.len(),
            damaged[0]
        )));
    }
    let snapshots = repo.snapshot_listing()?;
    if let Some(d) = snapshots.damaged.first() {
        return Err(BackupError::Corrupt(format!(
            "prune refused: snapshot {} cannot be read ({}); what it references is unknown, so nothing is deleted (move the snapshot's object away to prune without it)",
            d.id, d.error
        )));
    }
    let used = referenced(repo)?;
    let mut report = PruneReport {
        referenced: used.len() as u64,
        ..PruneReport::default()
    };
    for (pack, blobs) in repo.blobs_by_pack()? {
        let (mut dead_bytes, mut live_bytes) = (0, 0);
        for (b, share) in blobs.iter().zip(shares(&blobs)) {
            if used.contains(&b.0) {
                live_bytes += share;
            } else {
                dead_bytes += share;
            }
        }
        let (live, dead): (Vec<_>, Vec<_>) =
            blobs.into_iter().partition(|(id, _, _)| used.contains(id));
        if dead.is_empty() {
            continue;
        }
        if live.is_empty() {
            report.deleted += dead.len() as u64;
            report.packs_deleted += 1;
            if !dry_run {
                repo.delete_pack(&pack)?;
            }
        } else if dead_bytes * 100 >= (dead_bytes + live_bytes) * REPACK_UNUSED_PERCENT
            || dead_bytes + live_bytes < REPACK_SMALL
        {
            report.deleted += dead.len() as u64;
            report.packs_rewritten += 1;
            if !dry_run {
                repack(repo, &pack, &live)?;
            }
        } else {
            report.unused_kept += dead.len() as u64;
        }
    }
    // Packs without an index (a run killed between the two writes) hold nothing reachable.
    let indexed: HashSet<String> = repo.blobs_by_pack()?.into_keys().collect();
    for key in repo.target().list("packs")? {
        let name = key.rsplit('/').next().unwrap_or_default();
        if !indexed.contains(name) {
            report.packs_deleted += 1;
            if !dry_run {
                repo.delete_pack(name)?;
            }
        }
    }
    // With the exclusive lock held nothing is being written: every temporary file is a leftover.
    for key in repo.target().list("tmp")? {
        report.temporary_files += 1;
        if !dry_run {
            repo.target().delete(&key)?;
        }
    }
    Ok(report)
}

/// How an account differs between two snapshots.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AccountDiff {
    /// The account.
    pub address: String,
    /// Messages only in the second snapshot: `FOLDER/FILE`.
    pub added: Vec<String>,
    /// Messages only in the first.
    pub removed: Vec<String>,
    /// Messages in both whose flags changed: `FOLDER/FILE: OLD -> NEW`.
    pub flags_changed: Vec<String>,
}

fn messages(repo: &Repository, tree: &BlobId) -> Result<MessageMap, BackupError> {
    let tree: AccountTree = repo.get_json(tree)?;
    Ok(tree
        .folders
        .iter()
        .flat_map(|f| {
            let folder = crate::restore::folder_name(&f.dir);
            f.messages.iter().map(move |m| {
                (
                    (folder.clone(), m.base.clone()),
                    (m.recipe, m.flags().to_string()),
                )
            })
        })
        .collect())
}

/// What changed from snapshot `a` to snapshot `b`, per account.
pub fn diff(
    repo: &Repository,
    a: &Snapshot,
    b: &Snapshot,
) -> Result<Vec<AccountDiff>, BackupError> {
    let mut addresses: BTreeSet<&str> = a.accounts.iter().map(|x| x.address.as_str()).collect();
    addresses.extend(b.accounts.iter().map(|x| x.address.as_str()));
    let mut out = Vec::new();
    for address in addresses {
        let tree_of = |s: &Snapshot| {
            s.accounts
                .iter()
                .find(|x| x.address == address)
                .map(|x| x.tree)
        };
        let (ta, tb) = (tree_of(a), tree_of(b));
        if ta == tb {
            continue;
        }
        let ma = match ta {
            Some(t) => messages(repo, &t)?,
            None => BTreeMap::new(),
        };
        let mb = match tb {
            Some(t) => messages(repo, &t)?,
            None => BTreeMap::new(),
        };
        let mut d = AccountDiff {
            address: address.to_string(),
            ..AccountDiff::default()
        };
        for (k, (_, flags)) in &mb {
            match ma.get(k) {
                None => d.added.push(format!("{}/{}", k.0, k.1)),
                Some((_, old)) if old != flags => d
                    .flags_changed
                    .push(format!("{}/{}: {old:?} -> {flags:?}", k.0, k.1)),
                _ => {}
            }
        }
        for k in ma.keys() {
            if !mb.contains_key(k) {
                d.removed.push(format!("{}/{}", k.0, k.1));
            }
        }
        if !(d.added.is_empty() && d.removed.is_empty() && d.flags_changed.is_empty()) {
            out.push(d);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn snap(id: &str, y: i32, m: u32, d: u32, h: u32) -> Snapshot {
        let time = chrono::Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap();
        Snapshot {
            id: id.into(),
            time,
            finished: time,
            parent: None,
            accounts: Vec::new(),
        }
    }

    #[test]
    fn policy_keeps_the_newest_of_each_day_week_and_month() {
        let snaps = vec![
            snap("a", 2026, 9, 30, 1),
            snap("b", 2026, 10, 31, 1),
            snap("c", 2026, 11, 20, 1),
            snap("d", 2026, 11, 22, 1),
            snap("e", 2026, 11, 23, 1),
            snap("f", 2026, 11, 23, 12),
        ];
        let plan = plan_forget(
            &snaps,
            Keep {
                daily: 2,
                monthly: 3,
                ..Keep::default()
            },
        );
        // Days: f (23rd, newest of it), d (22nd). Months: f (Nov), b (Oct), a (Sep).
        assert_eq!(plan.keep, ["f", "d", "b", "a"]);
        assert_eq!(plan.forget, ["e", "c"]);
        let weekly = plan_forget(
            &snaps,
            Keep {
                weekly: 1,
                ..Keep::default()
            },
        );
        assert_eq!(weekly.keep, ["f"]);
        let nothing = plan_forget(&snaps, Keep::default());
        assert!(nothing.keep.is_empty());
    }
}

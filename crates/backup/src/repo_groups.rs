//! The repository's side of groups (`group`): small blobs gathered per kind, compressed
//! together outside the lock when a group is full (or at a flush), appended to the pack as one
//! object; reads of members, through the cache of groups decoded lately.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::dict::Kind;
use crate::error::BackupError;
use crate::group::{Group, Pending};
use crate::id::BlobId;
use crate::repo::{FORMAT, Magic, PutStats, Repository};

/// A group's object: `MFG1` + zstd; encrypted `MFH1` + sealed zstd.
const GROUP: Magic = (b"MFG1", b"MFH1");
/// The authenticated context of a group's object. Not bound to a name (a group has none of
/// its own, and prune moves it to other packs): each member is checked against its id on read,
/// and a group put in another's place names none of the members looked for there.
const GROUP_CONTEXT: &str = "group";

/// Whether a stored object is a group.
pub(crate) fn is_group(object: &[u8]) -> bool {
    object.starts_with(GROUP.0) || object.starts_with(GROUP.1)
}

impl Repository {
    /// Adds a small blob to its kind's group; the blob that fills the group seals it.
    pub(crate) fn add_member(
        &self,
        kind: Kind,
        id: BlobId,
        content: &[u8],
        stats: &mut PutStats,
    ) -> Result<(), BackupError> {
        let full = {
            let mut s = self.state();
            if s.present(&id) {
                stats.reused_blobs += 1;
                return Ok(());
            }
            let slot = &mut s.pending[kind.slot()];
            let group = slot.get_or_insert_with(|| Pending::new(kind));
            if group.add(id, content) {
                let full = slot.take().map(Arc::new);
                s.sealing.extend(full.clone());
                full
            } else {
                None
            }
        };
        stats.new_blobs += 1;
        match full {
            Some(group) => self.seal(group, stats),
            None => Ok(()),
        }
    }

    /// Seals every group waiting (before a pack is written for a snapshot).
    pub(crate) fn seal_groups(&self, stats: &mut PutStats) -> Result<(), BackupError> {
        let groups: Vec<Arc<Pending>> = {
            let mut s = self.state();
            let taken: Vec<Arc<Pending>> = s
                .pending
                .iter_mut()
                .filter_map(Option::take)
                .filter(|p| !p.is_empty())
                .map(Arc::new)
                .collect();
            s.sealing.extend(taken.iter().cloned());
            taken
        };
        for g in groups {
            self.seal(g, stats)?;
        }
        Ok(())
    }

    /// Compresses a group (with its kind's dictionary) and appends it to the pack.
    fn seal(&self, group: Arc<Pending>, stats: &mut PutStats) -> Result<(), BackupError> {
        let object = (|| {
            self.ensure_format("grouped small blobs")?;
            let dict = self.dicts().current(group.kind);
            self.wrap_as(GROUP, GROUP_CONTEXT, &group.encode(), dict.as_deref())
        })();
        let full = {
            let mut s = self.state();
            s.sealing.retain(|p| !Arc::ptr_eq(p, &group));
            let object = object?;
            stats.stored_bytes += object.len() as u64;
            s.writer.add_group(group.ids(), &object);
            s.writer.data.len() >= crate::pack::PACK_SIZE
        };
        if full {
            self.flush_pack()?;
        }
        Ok(())
    }

    /// Appends an object as stored (prune moving it): a group's with all its members.
    pub(crate) fn add_placed(&self, ids: &[BlobId], object: &[u8]) -> Result<(), BackupError> {
        let full = {
            let mut s = self.state();
            s.writer.add_group(ids, object);
            s.writer.data.len() >= crate::pack::PACK_SIZE
        };
        if full {
            self.flush_pack()?;
        }
        Ok(())
    }

    /// Decodes a group's object.
    pub(crate) fn open_group(&self, object: &[u8]) -> Result<Group, BackupError> {
        let plain = self.unwrap_as(GROUP, GROUP_CONTEXT, object)?;
        Group::decode(plain).ok_or_else(|| BackupError::Corrupt("a damaged group".into()))
    }

    /// A member of the group `object`; the group is kept for its other members when it was
    /// read from `at` (pack, offset).
    pub(crate) fn member_of(
        &self,
        id: &BlobId,
        object: &[u8],
        at: Option<(String, u64)>,
    ) -> Result<Vec<u8>, BackupError> {
        let group = Arc::new(self.open_group(object)?);
        let content = group
            .content(id)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| BackupError::Corrupt("not in the group its index places it in".into()));
        if let Some((pack, offset)) = at {
            self.groups
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(pack, offset, group);
        }
        content
    }

    /// A member of a group decoded lately, if the group at (pack, offset) is one.
    pub(crate) fn cached_member(&self, id: &BlobId, pack: &str, offset: u64) -> Option<Vec<u8>> {
        let group = self
            .groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(pack, offset)?;
        group.content(id).map(<[u8]>::to_vec)
    }

    /// Raises an older repository's format before the first object older readers would not
    /// know (`what`), once per process.
    pub(crate) fn ensure_format(&self, what: &str) -> Result<(), BackupError> {
        if self.config.format >= FORMAT || self.upgraded.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut config = self.config.clone();
        config.format = FORMAT;
        let json =
            serde_json::to_vec_pretty(&config).map_err(|e| BackupError::Format(e.to_string()))?;
        self.target.put("config", &json)?;
        if !self.upgraded.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                "repository {} upgraded from format {} to {FORMAT} ({what}); mailfleet versions \
                 before it cannot read it",
                self.target.describe(),
                self.config.format
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};
    use std::path::Path;

    use super::*;
    use crate::crypto::Keys;
    use crate::maintenance::{Keep, forget, prune};
    use crate::restore::{Filter, to_dir};
    use crate::run::{Source, run};
    use crate::target::DirTarget;

    fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        for d in ["cur", "new"] {
            for e in std::fs::read_dir(dir.join(d)).unwrap().flatten() {
                out.insert(
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                );
            }
        }
        out
    }

    fn indexed(repo: &Repository) -> HashSet<BlobId> {
        let packs = repo.blobs_by_pack().unwrap();
        packs.into_values().flatten().map(|b| b.0).collect()
    }

    /// Every blob that lies in a group, per group, as the packs hold them.
    fn grouped(repo: &Repository) -> Vec<Vec<BlobId>> {
        let mut out = Vec::new();
        for blobs in repo.blobs_by_pack().unwrap().into_values() {
            let mut seen = HashSet::new();
            for (id, offset, _) in blobs {
                if !seen.insert(offset) {
                    continue;
                }
                let object = repo.get_object(&id).unwrap();
                if is_group(&object) {
                    out.push(repo.open_group(&object).unwrap().ids().copied().collect());
                }
            }
        }
        out
    }

    fn forgotten_members_are_gone_after_prune(keys: impl Fn() -> Option<Keys>) {
        let tmp = tempfile::tempdir().unwrap();
        let md = tmp.path().join("Maildir");
        for d in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(md.join(d)).unwrap();
        }
        for i in 0..80 {
            let raw = format!(
                "From: sender{i}@example.net\nTo: alice@example.com\nSubject: note {i}\n\
                 Message-ID: <{i}@example.net>\n\n{}",
                format!("line {i} of a short note, different in each message\n").repeat(20)
            );
            std::fs::write(md.join(format!("cur/17000{i:05}.M1P1.store1:2,S")), raw).unwrap();
        }
        let sources = [Source {
            server: "store1".into(),
            address: "alice@example.com".into(),
            maildir: md.clone(),
        }];
        let target = || Box::new(DirTarget::new(&tmp.path().join("repo")).unwrap());
        let repo = Repository::init(target(), keys()).unwrap();
        run(&repo, &sources, &mut |_| {}).unwrap();
        let first = grouped(&repo);
        assert!(
            first.iter().any(|g| g.len() >= 80),
            "small blobs are grouped: {:?}",
            first.iter().map(Vec::len).collect::<Vec<_>>()
        );
        let before = indexed(&repo);

        for i in 0..10 {
            std::fs::remove_file(md.join(format!("cur/17000{i:05}.M1P1.store1:2,S"))).unwrap();
        }
        run(&repo, &sources, &mut |_| {}).unwrap();
        let keep = Keep {
            last: 1,
            ..Keep::default()
        };
        forget(&repo, keep, false).unwrap();
        let report = prune(&repo, false).unwrap();
        assert!(report.deleted >= 20, "{report:?}");
        assert!(report.packs_rewritten >= 1, "{report:?}");

        let repo = Repository::open(target(), keys()).unwrap();
        let after = indexed(&repo);
        assert!(before.difference(&after).count() >= 20);
        for group in grouped(&repo) {
            for id in group {
                assert!(after.contains(&id), "group still holds forgotten blob {id}");
            }
        }
        let out = tmp.path().join("out");
        let snapshot = repo.snapshots().unwrap().pop().unwrap();
        let restored = to_dir(&repo, &snapshot, &Filter::default(), &out).unwrap();
        assert!(restored.failed.is_empty(), "{:?}", restored.failed);
        let dir = crate::restore::account_dir(&out, "alice@example.com");
        assert_eq!(files(&dir), files(&md));
        assert_eq!(files(&md).len(), 70);
        assert!(crate::verify::verify(&repo, true).unwrap().ok());
    }

    #[test]
    fn prune_regroups_what_is_kept_and_drops_what_is_forgotten() {
        forgotten_members_are_gone_after_prune(|| None);
    }

    #[test]
    fn prune_regroups_in_an_encrypted_repository() {
        forgotten_members_are_gone_after_prune(|| Some(Keys::from_secret(&[7; 32])));
    }
}

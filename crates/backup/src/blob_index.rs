//! Where each blob lies: the local index file (see `index_file`) for what it covers, and in
//! memory only the blobs of segments it does not cover yet (packs written since, by this run
//! or others). Merging writes those into a new file, so memory holds the work of one run, not
//! the repository. Without a cache directory everything stays in memory, as for a repository
//! opened only to be checked or pruned.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::id::BlobId;
use crate::index_file::{self, IndexFile, Record};
use crate::pack::{IndexSegment, Location};

/// The in-memory part is merged into the file at the end of a run, or before when it grows
/// past this many blobs (about 50 MB).
pub(crate) const RECENT_LIMIT: usize = 500_000;

/// The blob index of an open repository.
#[derive(Default)]
pub(crate) struct BlobIndex {
    /// Pack names; a `Location.pack` is a position here. The file's packs come first.
    pub(crate) packs: Vec<String>,
    file: Option<Arc<IndexFile>>,
    recent: HashMap<BlobId, Location>,
    /// Packs removed by a prune in this process: their blobs are gone.
    dead: HashSet<u32>,
    /// A merge is being written aside.
    merging: bool,
}

/// What a merge written outside the repository's lock starts from (`BlobIndex::plan_merge`).
pub(crate) struct MergePlan {
    packs: Vec<String>,
    old: Option<Arc<IndexFile>>,
    recent: Vec<Record>,
}

impl MergePlan {
    /// How many blobs it adds to the file.
    pub(crate) fn adds(&self) -> usize {
        self.recent.len()
    }

    /// Writes the new file at `path` (the old one is read meanwhile by lookups: they hold its
    /// open handle, which the rename does not touch) and opens it.
    pub(crate) fn write(&self, path: &Path) -> std::io::Result<IndexFile> {
        let old: Box<dyn Iterator<Item = std::io::Result<Record>>> = match &self.old {
            Some(f) => Box::new(f.records()?),
            None => Box::new(std::iter::empty()),
        };
        let count = self.old.as_ref().map_or(0, |f| f.count()) + self.recent.len() as u64;
        index_file::write(
            path,
            &self.packs,
            count,
            MergeSorted::new(old, self.recent.iter().copied()),
        )?;
        IndexFile::open(path)
    }
}

impl BlobIndex {
    /// An index starting from a cache file.
    pub(crate) fn from_file(file: IndexFile) -> Self {
        BlobIndex {
            packs: file.packs.clone(),
            file: Some(Arc::new(file)),
            ..BlobIndex::default()
        }
    }

    /// Takes what a merge aside needs; `None` when one is being written already, or when
    /// a prune removed packs here (their numbers change: `merge` under the lock then).
    pub(crate) fn plan_merge(&mut self) -> Option<MergePlan> {
        if self.merging || !self.dead.is_empty() {
            return None;
        }
        self.merging = true;
        let mut recent: Vec<Record> = self
            .recent
            .iter()
            .map(|(id, l)| Record {
                id: *id,
                pack: l.pack,
                offset: l.offset,
                len: l.len,
            })
            .collect();
        recent.sort_unstable_by_key(|r| r.id);
        Some(MergePlan {
            packs: self.packs.clone(),
            old: self.file.clone(),
            recent,
        })
    }

    /// Continues from the file a plan wrote (or, on `Err`, as before): the blobs it holds
    /// leave memory; those added meanwhile stay. Pack numbers are the same in both (the
    /// file's packs are the first of ours, nothing was removed).
    pub(crate) fn finish_merge(&mut self, plan: MergePlan, written: std::io::Result<IndexFile>) {
        self.merging = false;
        let file = match written {
            Ok(f) if self.dead.is_empty() && self.packs.starts_with(&f.packs) => f,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!("the local blob index could not be written: {e}");
                return;
            }
        };
        for r in &plan.recent {
            let merged = Location {
                pack: r.pack,
                offset: r.offset,
                len: r.len,
            };
            if self.recent.get(&r.id) == Some(&merged) {
                self.recent.remove(&r.id);
            }
        }
        self.file = Some(Arc::new(file));
    }

    /// Adds a segment's blobs (in memory).
    pub(crate) fn add_segment(&mut self, segment: IndexSegment) {
        let pack = u32::try_from(self.packs.len()).unwrap_or(u32::MAX);
        self.packs.push(segment.pack);
        for (id, offset, len) in segment.blobs {
            self.recent.insert(id, Location { pack, offset, len });
        }
    }

    /// Where a blob lies. A cache file that cannot be read says "not here": the blob is then
    /// stored again, never assumed present.
    pub(crate) fn get(&self, id: &BlobId) -> Option<Location> {
        if let Some(l) = self.recent.get(id) {
            return Some(*l);
        }
        let file = self.file.as_ref()?;
        match file.get(id) {
            Ok(Some(r)) if !self.dead.contains(&r.pack) => Some(Location {
                pack: r.pack,
                offset: r.offset,
                len: r.len,
            }),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!("the local blob index: {e}");
                None
            }
        }
    }

    /// Forgets a pack's blobs.
    pub(crate) fn remove_pack(&mut self, name: &str) {
        if let Some(p) = self.packs.iter().position(|n| n == name) {
            let p = u32::try_from(p).unwrap_or(u32::MAX);
            self.recent.retain(|_, loc| loc.pack != p);
            self.dead.insert(p);
        }
    }

    /// Whether a merge is being written aside.
    pub(crate) fn merging(&self) -> bool {
        self.merging
    }

    /// Blobs held in memory.
    pub(crate) fn recent(&self) -> usize {
        self.recent.len()
    }

    /// Calls `f` for every blob with its location (file first, then memory; a blob in both
    /// once).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&BlobId, &Location)) -> std::io::Result<()> {
        if let Some(file) = &self.file {
            for r in file.records()? {
                let r = r?;
                if self.dead.contains(&r.pack) || self.recent.contains_key(&r.id) {
                    continue;
                }
                f(
                    &r.id,
                    &Location {
                        pack: r.pack,
                        offset: r.offset,
                        len: r.len,
                    },
                );
            }
        }
        for (id, loc) in &self.recent {
            f(id, loc);
        }
        Ok(())
    }

    /// Writes everything into a new index file at `path` and continues from it.
    pub(crate) fn merge(&mut self, path: &Path) -> std::io::Result<()> {
        // Live packs keep their order; records are renumbered when a dead one is left out.
        let mut renumber = vec![u32::MAX; self.packs.len()];
        let mut packs = Vec::with_capacity(self.packs.len());
        for (i, name) in self.packs.iter().enumerate() {
            if !self.dead.contains(&(i as u32)) {
                renumber[i] = packs.len() as u32;
                packs.push(name.clone());
            }
        }
        let mut recent: Vec<Record> = self
            .recent
            .iter()
            .map(|(id, l)| Record {
                id: *id,
                pack: renumber[l.pack as usize],
                offset: l.offset,
                len: l.len,
            })
            .collect();
        recent.sort_unstable_by_key(|r| r.id);
        let old: Box<dyn Iterator<Item = std::io::Result<Record>>> = match &self.file {
            Some(f) => {
                let dead = self.dead.clone();
                let renumber = renumber.clone();
                Box::new(f.records()?.filter_map(move |r| match r {
                    Ok(r) if dead.contains(&r.pack) => None,
                    Ok(r) => Some(Ok(Record {
                        pack: renumber[r.pack as usize],
                        ..r
                    })),
                    Err(e) => Some(Err(e)),
                }))
            }
            None => Box::new(std::iter::empty()),
        };
        let count = self.file.as_ref().map_or(0, |f| f.count()) + recent.len() as u64;
        index_file::write(
            path,
            &packs,
            count,
            MergeSorted::new(old, recent.into_iter()),
        )?;
        let merging = self.merging;
        *self = BlobIndex::from_file(IndexFile::open(path)?);
        self.merging = merging;
        Ok(())
    }
}

/// Two id-sorted streams as one.
struct MergeSorted<A: Iterator<Item = std::io::Result<Record>>, B: Iterator<Item = Record>> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<A: Iterator<Item = std::io::Result<Record>>, B: Iterator<Item = Record>> MergeSorted<A, B> {
    fn new(a: A, b: B) -> Self {
        MergeSorted {
            a: a.peekable(),
            b: b.peekable(),
        }
    }
}

impl<A: Iterator<Item = std::io::Result<Record>>, B: Iterator<Item = Record>> Iterator
    for MergeSorted<A, B>
{
    type Item = std::io::Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        let take_a = match (self.a.peek(), self.b.peek()) {
            (None, None) => return None,
            (Some(Err(_)), _) | (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(Ok(a)), Some(b)) => a.id <= b.id,
        };
        if take_a {
            self.a.next()
        } else {
            self.b.next().map(Ok)
        }
    }
}

/// The local index file of a repository, under the cache directory.
pub(crate) fn cache_path(dir: &Path) -> PathBuf {
    dir.join("blobs.index")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(pack: u8, ids: std::ops::Range<u32>) -> IndexSegment {
        IndexSegment {
            pack: BlobId::of(&[pack]).hex(),
            blobs: ids
                .map(|i| (BlobId::of(&i.to_le_bytes()), u64::from(i), i))
                .collect(),
        }
    }

    #[test]
    fn merged_blobs_are_found_in_the_file_and_dead_packs_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = cache_path(dir.path());
        let mut index = BlobIndex::default();
        index.add_segment(segment(1, 0..100));
        index.add_segment(segment(2, 100..200));
        index.merge(&path).unwrap();
        assert_eq!(index.recent(), 0);
        index.add_segment(segment(3, 200..300));
        let id = |i: u32| BlobId::of(&i.to_le_bytes());
        assert_eq!(index.get(&id(150)).map(|l| l.offset), Some(150));
        assert_eq!(index.get(&id(250)).map(|l| l.pack), Some(2));
        index.remove_pack(&BlobId::of(&[1]).hex());
        assert_eq!(index.get(&id(50)), None);
        index.merge(&path).unwrap();
        let mut n = 0;
        index.for_each(|_, _| n += 1).unwrap();
        assert_eq!(n, 200);
        assert_eq!(index.packs.len(), 2);
        let l = index.get(&id(250)).unwrap();
        assert_eq!(index.packs[l.pack as usize], BlobId::of(&[3]).hex());
        assert_eq!(index.get(&id(50)), None);
    }

    #[test]
    fn a_merge_written_aside_keeps_the_blobs_added_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let path = cache_path(dir.path());
        let id = |i: u32| BlobId::of(&i.to_le_bytes());
        let mut index = BlobIndex::default();
        index.add_segment(segment(1, 0..100));
        index.merge(&path).unwrap();
        index.add_segment(segment(2, 100..200));
        let plan = index.plan_merge().unwrap();
        assert!(index.plan_merge().is_none(), "one merge at a time");
        // Stored while the file is written: not in it, so they stay in memory.
        index.add_segment(segment(3, 200..250));
        let written = plan.write(&path);
        index.finish_merge(plan, written);
        assert_eq!(index.recent(), 50);
        for i in 0..250 {
            let l = index.get(&id(i)).unwrap();
            assert_eq!(l.offset, u64::from(i));
            assert_eq!(
                index.packs[l.pack as usize],
                BlobId::of(&[(i / 100 + 1) as u8]).hex()
            );
        }
        // A failed write changes nothing.
        let plan = index.plan_merge().unwrap();
        index.finish_merge(plan, Err(std::io::Error::other("disk full")));
        assert_eq!(index.recent(), 50);
        assert!(index.get(&id(220)).is_some() && index.get(&id(20)).is_some());
        let plan = index.plan_merge().unwrap();
        let written = plan.write(&path);
        index.finish_merge(plan, written);
        assert_eq!(index.recent(), 0);
        let reopened = BlobIndex::from_file(IndexFile::open(&path).unwrap());
        assert_eq!(reopened.get(&id(249)).map(|l| l.offset), Some(249));
    }
}

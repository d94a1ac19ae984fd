//! Where each blob lies: the local index file (see `index_file`) for what it covers, and in
//! memory only the blobs of segments it does not cover yet (packs written since, by this run
//! or others). Merging writes those into a new file, so memory holds the work of one run, not
//! the repository. Without a cache directory everything stays in memory, as for a repository
//! opened only to be checked or pruned.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

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
    file: Option<IndexFile>,
    recent: HashMap<BlobId, Location>,
    /// Packs removed by a prune in this process: their blobs are gone.
    dead: HashSet<u32>,
}

impl BlobIndex {
    /// An index starting from a cache file.
    pub(crate) fn from_file(file: IndexFile) -> Self {
        BlobIndex {
            packs: file.packs.clone(),
            file: Some(file),
            ..BlobIndex::default()
        }
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
        let count = self.file.as_ref().map_or(0, IndexFile::count) + recent.len() as u64;
        index_file::write(
            path,
            &packs,
            count,
            MergeSorted::new(old, recent.into_iter()),
        )?;
        *self = BlobIndex::from_file(IndexFile::open(path)?);
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
}

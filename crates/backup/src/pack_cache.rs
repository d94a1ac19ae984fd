//! Whole packs kept in memory for reads that walk through them (restore, verify), so a
//! pack read blob by blob many times is fetched once.

use std::collections::HashMap;

/// A pack read from this many times is fetched whole instead of blob by blob.
const CACHE_AFTER_READS: u32 = 4;
/// Packs kept (16 MiB each at most).
const CACHED_PACKS: usize = 8;

/// Read counts per pack and the packs held, least recently used first.
#[derive(Default)]
pub(crate) struct PackCache {
    reads: HashMap<String, u32>,
    packs: std::collections::VecDeque<(String, std::sync::Arc<Vec<u8>>)>,
}

/// How to read a blob of a pack.
pub(crate) enum PackRead {
    /// From the pack held in memory.
    Cached(std::sync::Arc<Vec<u8>>),
    /// Fetch the whole pack (it is being read through) and keep it.
    Whole,
    /// Just the blob's range.
    Range,
}

impl PackCache {
    /// How to read a blob of `pack`; counts the read.
    pub(crate) fn plan(&mut self, pack: &str) -> PackRead {
        // Least recently used goes first: a hit moves to the back.
        if let Some(i) = self.packs.iter().position(|(n, _)| n == pack)
            && let Some(entry) = self.packs.remove(i)
        {
            let data = entry.1.clone();
            self.packs.push_back(entry);
            return PackRead::Cached(data);
        }
        let reads = self.reads.entry(pack.to_string()).or_default();
        *reads += 1;
        if *reads >= CACHE_AFTER_READS {
            PackRead::Whole
        } else {
            PackRead::Range
        }
    }

    /// Keeps a whole pack, dropping the least recently used past the limit.
    pub(crate) fn insert(&mut self, pack: String, data: std::sync::Arc<Vec<u8>>) {
        self.reads.remove(&pack);
        self.packs.push_back((pack, data));
        if self.packs.len() > CACHED_PACKS {
            self.packs.pop_front();
        }
    }
}

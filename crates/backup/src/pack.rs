//! Packs: blobs are not stored one file each but appended to pack files of about 16 MiB, each
//! written once (one fsync, one S3 request) and then described by an index segment
//! `index/PACK` listing where each of its blobs starts. A pack is only written whole and its
//! index only after it, so a crash leaves at worst a pack nobody indexes (prune removes it),
//! never an index entry pointing at missing bytes.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::id::BlobId;

/// Packs are closed at this size.
pub const PACK_SIZE: usize = 16 << 20;

/// Where a blob's object lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Index into the repository's pack names.
    pub pack: u32,
    /// Byte offset in the pack.
    pub offset: u64,
    /// Length of the stored object.
    pub len: u32,
}

/// An index segment: the blobs of one pack, as `[id, offset, len]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexSegment {
    /// The pack's name (hex).
    pub pack: String,
    /// Its blobs.
    pub blobs: Vec<(BlobId, u64, u32)>,
}

/// The object key of a pack.
pub fn pack_key(name: &str) -> String {
    format!("packs/{}/{name}", name.get(..2).unwrap_or("00"))
}

/// The object key of a pack's index segment.
pub fn index_key(name: &str) -> String {
    format!("index/{name}")
}

/// A pack being filled.
#[derive(Debug, Default)]
pub struct PackWriter {
    /// The objects so far, back to back.
    pub data: Vec<u8>,
    /// Each blob's offset and length in `data`.
    pub blobs: HashMap<BlobId, (u64, u32)>,
    /// The order blobs were added in (the index lists them so).
    pub order: Vec<BlobId>,
}

impl PackWriter {
    /// Appends an object.
    pub fn add(&mut self, id: BlobId, object: &[u8]) {
        let offset = self.data.len() as u64;
        self.data.extend_from_slice(object);
        // An object is a blob of at most a chunk (a few MiB) plus framing: far below 4 GiB.
        let len = u32::try_from(object.len()).unwrap_or(u32::MAX);
        self.blobs.insert(id, (offset, len));
        self.order.push(id);
    }

    /// Appends a group's object: every member lies at its location.
    pub fn add_group(&mut self, ids: &[BlobId], object: &[u8]) {
        let offset = self.data.len() as u64;
        self.data.extend_from_slice(object);
        // A group is about 128 KiB of plain content: far below 4 GiB compressed.
        let len = u32::try_from(object.len()).unwrap_or(u32::MAX);
        for id in ids {
            if self.blobs.insert(*id, (offset, len)).is_none() {
                self.order.push(*id);
            }
        }
    }

    /// The object of a blob not yet written.
    pub fn object(&self, id: &BlobId) -> Option<&[u8]> {
        let (o, l) = self.blobs.get(id)?;
        self.data.get(*o as usize..*o as usize + *l as usize)
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The pack's index segment (its name is the hash of its bytes).
    pub fn segment(&self) -> IndexSegment {
        let blobs = self
            .order
            .iter()
            .filter_map(|id| self.blobs.get(id).map(|(o, l)| (*id, *o, *l)))
            .collect();
        IndexSegment {
            pack: BlobId::of(&self.data).hex(),
            blobs,
        }
    }

    /// Takes the pack's bytes and its index, leaving the writer empty.
    pub fn take(&mut self) -> (Vec<u8>, IndexSegment) {
        let segment = self.segment();
        let data = std::mem::take(&mut self.data);
        self.order.clear();
        self.blobs.clear();
        (data, segment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pack_lists_its_blobs_in_order() {
        let mut w = PackWriter::default();
        w.add(BlobId::of(b"a"), b"AAAA");
        w.add(BlobId::of(b"b"), b"BB");
        assert_eq!(w.object(&BlobId::of(b"b")), Some(&b"BB"[..]));
        let (data, index) = w.take();
        assert_eq!(data, b"AAAABB");
        assert_eq!(index.pack, BlobId::of(b"AAAABB").hex());
        assert_eq!(
            index.blobs,
            [(BlobId::of(b"a"), 0, 4), (BlobId::of(b"b"), 4, 2)]
        );
        assert!(w.is_empty() && w.data.is_empty());
        assert_eq!(pack_key("abcdef"), "packs/ab/abcdef");
    }
}

//! Groups: small blobs of one kind (header blocks, short text bodies) compressed together as
//! one object of a pack, so they share zstd's context (a header repeats much of the one before
//! it). Every member is indexed at the group's location; a read decompresses the group and
//! finds the member by its id in the group's table. Reads that walk through a pack (restore,
//! verify) keep the last groups decoded, so a group is decompressed once, not once a member.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::dict::Kind;
use crate::id::BlobId;

/// Blobs up to this size are grouped; larger ones compress well alone and are read alone.
pub(crate) const MEMBER_MAX: usize = 16 << 10;
/// A group is sealed at this much plain content. Larger groups compress a little better; a
/// read of one member decompresses the whole group.
pub(crate) const GROUP_PLAIN: usize = 128 << 10;
/// Decoded groups kept for reads (at most `GROUP_PLAIN` plus one member each).
const CACHED_GROUPS: usize = 32;

/// Bytes of a member's entry in the table: id and length.
const ENTRY: usize = 32 + 4;

/// Blobs of one kind waiting to be compressed together.
#[derive(Debug)]
pub(crate) struct Pending {
    /// Their kind (which dictionary the group uses).
    pub(crate) kind: Kind,
    /// Each member's range in `data`.
    pub(crate) members: HashMap<BlobId, (u32, u32)>,
    /// In the order added.
    order: Vec<BlobId>,
    /// Their contents, back to back.
    data: Vec<u8>,
}

impl Pending {
    /// An empty group of `kind`.
    pub(crate) fn new(kind: Kind) -> Self {
        Pending {
            kind,
            members: HashMap::new(),
            order: Vec::new(),
            data: Vec::new(),
        }
    }

    /// Adds a blob (at most `MEMBER_MAX` bytes); true when the group is full.
    pub(crate) fn add(&mut self, id: BlobId, content: &[u8]) -> bool {
        // Members are at most MEMBER_MAX and a group is sealed past GROUP_PLAIN: far below 4 GiB.
        let start = self.data.len() as u32;
        self.data.extend_from_slice(content);
        self.members.insert(id, (start, content.len() as u32));
        self.order.push(id);
        self.data.len() >= GROUP_PLAIN
    }

    /// A member's content.
    pub(crate) fn content(&self, id: &BlobId) -> Option<&[u8]> {
        let (s, l) = self.members.get(id)?;
        self.data.get(*s as usize..(*s + *l) as usize)
    }

    /// Whether it holds nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The members' ids, in order.
    pub(crate) fn ids(&self) -> &[BlobId] {
        &self.order
    }

    /// The plain form to compress: member count, kind, the table, the contents.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + self.order.len() * ENTRY + self.data.len());
        out.extend_from_slice(&(self.order.len() as u32).to_le_bytes());
        out.push(self.kind.slot() as u8);
        for id in &self.order {
            let (_, len) = self.members[id];
            out.extend_from_slice(&id.0);
            out.extend_from_slice(&len.to_le_bytes());
        }
        // Members were appended in `order`: the contents are already back to back in it.
        out.extend_from_slice(&self.data);
        out
    }
}

/// A group as read back.
#[derive(Debug)]
pub(crate) struct Group {
    /// The members' kind.
    pub(crate) kind: Kind,
    members: Vec<(BlobId, u32, u32)>,
    data: Vec<u8>,
}

impl Group {
    /// Parses the plain form; `None` when it is not a well-formed group.
    pub(crate) fn decode(mut plain: Vec<u8>) -> Option<Self> {
        let count = u32::from_le_bytes(plain.get(..4)?.try_into().ok()?) as usize;
        let kind = *Kind::ALL.get(usize::from(*plain.get(4)?))?;
        let table_end = 5usize.checked_add(count.checked_mul(ENTRY)?)?;
        let table = plain.get(5..table_end)?;
        let mut members = Vec::with_capacity(count);
        let mut start = 0u64;
        for e in table.chunks_exact(ENTRY) {
            let id = BlobId(e[..32].try_into().ok()?);
            let len = u32::from_le_bytes(e[32..].try_into().ok()?);
            members.push((id, u32::try_from(start).ok()?, len));
            start += u64::from(len);
        }
        if table_end as u64 + start != plain.len() as u64 {
            return None;
        }
        plain.drain(..table_end);
        Some(Group {
            kind,
            members,
            data: plain,
        })
    }

    /// A member's content.
    pub(crate) fn content(&self, id: &BlobId) -> Option<&[u8]> {
        let (_, s, l) = self.members.iter().find(|(m, _, _)| m == id)?;
        self.data.get(*s as usize..(*s + *l) as usize)
    }

    /// The members' ids, in order.
    pub(crate) fn ids(&self) -> impl Iterator<Item = &BlobId> {
        self.members.iter().map(|(id, _, _)| id)
    }
}

/// Groups decoded lately, by where they lie (pack name, offset).
#[derive(Default)]
pub(crate) struct GroupCache {
    groups: VecDeque<((String, u64), Arc<Group>)>,
}

impl GroupCache {
    /// The group at this location, if decoded lately.
    pub(crate) fn get(&mut self, pack: &str, offset: u64) -> Option<Arc<Group>> {
        let i = self
            .groups
            .iter()
            .position(|((p, o), _)| *o == offset && p == pack)?;
        let entry = self.groups.remove(i)?;
        let g = entry.1.clone();
        self.groups.push_back(entry);
        Some(g)
    }

    /// Keeps a decoded group, dropping the least recently used past the limit.
    pub(crate) fn insert(&mut self, pack: String, offset: u64, group: Arc<Group>) {
        self.groups.push_back(((pack, offset), group));
        if self.groups.len() > CACHED_GROUPS {
            self.groups.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_round_trips_and_finds_each_member() {
        let mut p = Pending::new(Kind::Text);
        let items: Vec<Vec<u8>> = (0..50)
            .map(|i| format!("body {i} ").repeat(i + 1).into_bytes())
            .collect();
        for it in &items {
            assert!(!p.add(BlobId::of(it), it));
        }
        assert_eq!(p.content(&BlobId::of(&items[7])), Some(&items[7][..]));
        let g = Group::decode(p.encode()).unwrap();
        assert_eq!(g.kind, Kind::Text);
        for it in &items {
            assert_eq!(g.content(&BlobId::of(it)), Some(&it[..]));
        }
        assert_eq!(g.ids().count(), 50);
        assert!(g.content(&BlobId::of(b"absent")).is_none());
    }

    #[test]
    fn a_damaged_group_is_refused_not_misread() {
        let mut p = Pending::new(Kind::Header);
        p.add(BlobId::of(b"a"), b"aaaa");
        p.add(BlobId::of(b"b"), b"bb");
        let plain = p.encode();
        for cut in 0..plain.len() {
            assert!(
                Group::decode(plain[..cut].to_vec()).is_none(),
                "cut at {cut}"
            );
        }
        let mut bad_kind = plain.clone();
        bad_kind[4] = 9;
        assert!(Group::decode(bad_kind).is_none());
        let mut huge = plain;
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Group::decode(huge).is_none());
    }

    #[test]
    fn the_cache_keeps_the_latest_groups() {
        let mut c = GroupCache::default();
        let g = || Arc::new(Group::decode(Pending::new(Kind::Text).encode()).unwrap());
        for i in 0..(CACHED_GROUPS as u64 + 1) {
            c.insert("p".into(), i, g());
        }
        assert!(c.get("p", 0).is_none());
        assert!(c.get("p", 1).is_some());
        assert!(c.get("q", 1).is_none());
    }
}

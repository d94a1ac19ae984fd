//! The blob index as a local file, so a run looks blobs up without holding millions of them in
//! memory: records sorted by blob id, read a page at a time (one `pread` per lookup), with a
//! Bloom filter in front (a blob that is not there, as every new one, costs no read) and the
//! first id of each page in memory. It is a cache of the repository's index segments, never
//! the only copy: written whole to a temporary file and renamed, and checked against its hash
//! when opened, so a file cut short by a crash or damaged is rebuilt from the segments.
//!
//! Layout: pack names (32 raw bytes each), records (id 32, pack u32, len u32, offset u64),
//! the filter, then a footer (sizes and the BLAKE3 hash of everything before it).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use crate::id::BlobId;

const MAGIC: &[u8; 4] = b"MFX1";
const RECORD: usize = 48;
/// Records per page: one page is one read of about 4 KiB.
const PAGE: usize = 85;
const FOOTER: usize = 64;
/// Filter bits per blob, and probes: about 1% false positives.
const BITS_PER_KEY: u64 = 10;
const PROBES: u32 = 7;

/// One record: a blob and where its object lies (pack as a position in the file's pack list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) id: BlobId,
    pub(crate) pack: u32,
    pub(crate) offset: u64,
    pub(crate) len: u32,
}

impl Record {
    fn encode(&self, out: &mut [u8]) {
        out[..32].copy_from_slice(&self.id.0);
        out[32..36].copy_from_slice(&self.pack.to_le_bytes());
        out[36..40].copy_from_slice(&self.len.to_le_bytes());
        out[40..48].copy_from_slice(&self.offset.to_le_bytes());
    }

    fn decode(b: &[u8]) -> Record {
        let mut id = [0u8; 32];
        id.copy_from_slice(&b[..32]);
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut off = [0u8; 8];
        off.copy_from_slice(&b[40..48]);
        Record {
            id: BlobId(id),
            pack: u32_at(32),
            len: u32_at(36),
            offset: u64::from_le_bytes(off),
        }
    }
}

/// A Bloom filter over blob ids (which are uniform hashes already: their bytes are the probes).
pub(crate) struct Filter {
    bits: Vec<u8>,
}

impl Filter {
    fn with_keys(keys: u64) -> Self {
        let bytes = (keys * BITS_PER_KEY).div_ceil(8).max(8);
        Filter {
            bits: vec![0; usize::try_from(bytes).unwrap_or(usize::MAX)],
        }
    }

    fn probes(&self, id: &BlobId) -> impl Iterator<Item = usize> {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&id.0[i..i + 8]);
            u64::from_le_bytes(w)
        };
        let (h1, h2) = (word(0), word(8) | 1);
        let m = self.bits.len() as u64 * 8;
        (0..u64::from(PROBES)).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % m) as usize)
    }

    fn add(&mut self, id: &BlobId) {
        let probes: Vec<usize> = self.probes(id).collect();
        for p in probes {
            self.bits[p / 8] |= 1 << (p % 8);
        }
    }

    fn may_hold(&self, id: &BlobId) -> bool {
        self.probes(id)
            .all(|p| self.bits[p / 8] & (1 << (p % 8)) != 0)
    }
}

/// An index file opened for lookups.
pub(crate) struct IndexFile {
    file: File,
    path: PathBuf,
    /// The packs its records point into.
    pub(crate) packs: Vec<String>,
    count: u64,
    records_at: u64,
    filter_at: u64,
    filter_bytes: u64,
    /// The first id of each page and the filter, read at the first lookup: a run that finds
    /// every message unchanged looks nothing up, and holds neither.
    lookup: std::sync::OnceLock<Result<(Vec<BlobId>, Filter), String>>,
}

fn bad(path: &Path, why: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{}: {why}", path.display()),
    )
}

impl IndexFile {
    /// Opens and checks a file; an error means it must be rebuilt.
    pub(crate) fn open(path: &Path) -> std::io::Result<IndexFile> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        if size < FOOTER as u64 {
            return Err(bad(path, "shorter than its footer"));
        }
        let mut footer = [0u8; FOOTER];
        file.read_exact_at(&mut footer, size - FOOTER as u64)?;
        if &footer[..4] != MAGIC {
            return Err(bad(path, "not an index file"));
        }
        let u32_at =
            |i: usize| u32::from_le_bytes([footer[i], footer[i + 1], footer[i + 2], footer[i + 3]]);
        let u64_at = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&footer[i..i + 8]);
            u64::from_le_bytes(w)
        };
        let npacks = u64::from(u32_at(4));
        let count = u64_at(8);
        let filter_bytes = u64_at(16);
        let body = npacks
            .checked_mul(32)
            .and_then(|p| {
                count
                    .checked_mul(RECORD as u64)
                    .and_then(|r| r.checked_add(p))
            })
            .and_then(|n| n.checked_add(filter_bytes));
        if body != Some(size - FOOTER as u64) {
            return Err(bad(path, "sizes do not add up"));
        }
        // One pass: the hash over everything, and what lookups keep in memory.
        let mut reader = BufReader::with_capacity(1 << 20, &file);
        let mut hasher = blake3::Hasher::new();
        let mut read = |n: usize, hasher: &mut blake3::Hasher| -> std::io::Result<Vec<u8>> {
            let mut buf = vec![0u8; n];
            reader.read_exact(&mut buf)?;
            hasher.update(&buf);
            Ok(buf)
        };
        let mut packs = Vec::with_capacity(npacks as usize);
        for _ in 0..npacks {
            let raw = read(32, &mut hasher)?;
            let mut id = [0u8; 32];
            id.copy_from_slice(&raw);
            packs.push(BlobId(id).hex());
        }
        let mut last: Option<BlobId> = None;
        let mut left = count as usize;
        while left > 0 {
            let n = left.min(PAGE);
            let page = read(n * RECORD, &mut hasher)?;
            for r in page.chunks_exact(RECORD) {
                let rec = Record::decode(r);
                if last.is_some_and(|l| l >= rec.id) || u64::from(rec.pack) >= npacks {
                    return Err(bad(path, "records out of order"));
                }
                last = Some(rec.id);
            }
            left -= n;
        }
        let mut left = filter_bytes as usize;
        while left > 0 {
            let n = left.min(1 << 20);
            read(n, &mut hasher)?;
            left -= n;
        }
        if hasher.finalize().as_bytes() != &footer[32..] {
            return Err(bad(path, "damaged (hash mismatch)"));
        }
        let records_at = npacks * 32;
        Ok(IndexFile {
            file,
            path: path.to_path_buf(),
            packs,
            count,
            records_at,
            filter_at: records_at + count * RECORD as u64,
            filter_bytes,
            lookup: std::sync::OnceLock::new(),
        })
    }

    /// Reads the page ids and the filter (once).
    fn lookup(&self) -> std::io::Result<&(Vec<BlobId>, Filter)> {
        let loaded = self.lookup.get_or_init(|| {
            let load = || -> std::io::Result<(Vec<BlobId>, Filter)> {
                let mut bits = vec![0u8; self.filter_bytes as usize];
                self.file.read_exact_at(&mut bits, self.filter_at)?;
                let pages = (self.count as usize).div_ceil(PAGE);
                let mut fences = Vec::with_capacity(pages);
                let mut id = [0u8; 32];
                for p in 0..pages {
                    self.file
                        .read_exact_at(&mut id, self.records_at + (p * PAGE * RECORD) as u64)?;
                    fences.push(BlobId(id));
                }
                Ok((fences, Filter { bits }))
            };
            load().map_err(|e| e.to_string())
        });
        loaded.as_ref().map_err(|e| bad(&self.path, e))
    }

    /// Blobs it holds.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Where a blob lies, if the file holds it.
    pub(crate) fn get(&self, id: &BlobId) -> std::io::Result<Option<Record>> {
        if self.count == 0 {
            return Ok(None);
        }
        let (fences, filter) = self.lookup()?;
        if !filter.may_hold(id) {
            return Ok(None);
        }
        let page = match fences.partition_point(|f| f <= id) {
            0 => return Ok(None),
            p => p - 1,
        };
        let first = page * PAGE;
        let n = (self.count as usize - first).min(PAGE);
        let mut buf = vec![0u8; n * RECORD];
        self.file
            .read_exact_at(&mut buf, self.records_at + (first * RECORD) as u64)?;
        let (mut lo, mut hi) = (0usize, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let r = Record::decode(&buf[mid * RECORD..(mid + 1) * RECORD]);
            match r.id.cmp(id) {
                std::cmp::Ordering::Equal => return Ok(Some(r)),
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        Ok(None)
    }

    /// Every record, in id order.
    pub(crate) fn records(&self) -> std::io::Result<impl Iterator<Item = std::io::Result<Record>>> {
        let mut f = File::open(&self.path)?;
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(self.records_at))?;
        let mut reader = BufReader::with_capacity(1 << 20, f);
        let mut left = self.count;
        Ok(std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            let mut buf = [0u8; RECORD];
            Some(reader.read_exact(&mut buf).map(|()| Record::decode(&buf)))
        }))
    }
}

/// Writes an index file from records sorted by id (duplicates dropped: the first stays),
/// through a temporary file renamed over `path`.
pub(crate) fn write(
    path: &Path,
    packs: &[String],
    count_hint: u64,
    records: impl Iterator<Item = std::io::Result<Record>>,
) -> std::io::Result<()> {
    let tmp = path.with_file_name(format!(
        "{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("index"),
        std::process::id()
    ));
    let result = (|| {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let mut out = BufWriter::with_capacity(1 << 20, &file);
        let mut hasher = blake3::Hasher::new();
        let mut put = |bytes: &[u8], out: &mut BufWriter<&File>| -> std::io::Result<()> {
            hasher.update(bytes);
            out.write_all(bytes)
        };
        for name in packs {
            let id =
                BlobId::parse(name).ok_or_else(|| bad(path, "a pack name that is not a hash"))?;
            put(&id.0, &mut out)?;
        }
        let mut filter = Filter::with_keys(count_hint.max(1));
        let mut count = 0u64;
        let mut last: Option<BlobId> = None;
        let mut buf = [0u8; RECORD];
        for r in records {
            let r = r?;
            if last.is_some_and(|l| l >= r.id) {
                if last == Some(r.id) {
                    continue;
                }
                return Err(bad(path, "records to write are not sorted"));
            }
            last = Some(r.id);
            filter.add(&r.id);
            r.encode(&mut buf);
            put(&buf, &mut out)?;
            count += 1;
        }
        put(&filter.bits, &mut out)?;
        let mut footer = [0u8; FOOTER];
        footer[..4].copy_from_slice(MAGIC);
        let npacks = u32::try_from(packs.len()).map_err(|_| bad(path, "too many packs"))?;
        footer[4..8].copy_from_slice(&npacks.to_le_bytes());
        footer[8..16].copy_from_slice(&count.to_le_bytes());
        footer[16..24].copy_from_slice(&(filter.bits.len() as u64).to_le_bytes());
        footer[32..].copy_from_slice(hasher.finalize().as_bytes());
        out.write_all(&footer)?;
        out.flush()?;
        drop(out);
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Removes temporary files that runs killed while writing left (their process is gone).
pub(crate) fn remove_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.rsplit_once(".tmp-").map(|(_, p)| p.to_string()) else {
            continue;
        };
        if !Path::new("/proc").join(&pid).exists() {
            // Best effort: a leftover only takes space until the next run tries again.
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u32) -> Record {
        Record {
            id: BlobId::of(&i.to_le_bytes()),
            pack: i % 3,
            offset: u64::from(i) * 100,
            len: i,
        }
    }

    #[test]
    fn records_are_found_missing_ones_are_not_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        let packs: Vec<String> = (0..3u8).map(|i| BlobId::of(&[i]).hex()).collect();
        let mut all: Vec<Record> = (0..1000).map(rec).collect();
        all.sort_by_key(|r| r.id);
        let doubled = all.iter().flat_map(|r| [Ok(*r), Ok(*r)]);
        write(&path, &packs, 1000, doubled).unwrap();
        let f = IndexFile::open(&path).unwrap();
        assert_eq!((f.count(), f.packs.clone()), (1000, packs.clone()));
        for i in 0..1000 {
            assert_eq!(f.get(&rec(i).id).unwrap(), Some(rec(i)));
        }
        for i in 1000..2000 {
            assert_eq!(f.get(&rec(i).id).unwrap(), None);
        }
        let listed: Vec<Record> = f.records().unwrap().map(Result::unwrap).collect();
        assert_eq!(listed, all);
        // Cut short or changed by one byte: refused.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        assert!(IndexFile::open(&path).is_err());
        let mut flipped = bytes.clone();
        flipped[100] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert!(IndexFile::open(&path).is_err());
        // An empty index is valid.
        write(&path, &[], 0, std::iter::empty()).unwrap();
        let f = IndexFile::open(&path).unwrap();
        assert_eq!(f.get(&rec(1).id).unwrap(), None);
        // Leftovers of a dead writer go; nothing else does.
        std::fs::write(dir.path().join("index.tmp-999999999"), b"x").unwrap();
        remove_leftovers(dir.path());
        assert!(!dir.path().join("index.tmp-999999999").exists());
        assert!(path.exists());
    }
}

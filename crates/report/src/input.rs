//! Reading log sources in chunks of whole lines: plain files (mapped), `.gz` files (detected
//! by their magic bytes, so rotated files keep working whatever their name), and stdin.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::mapped::Mapped;

/// Bytes per chunk handed to a parser thread.
pub const CHUNK: usize = 1 << 20;

/// Orders a rotated set oldest first: `mail.log.3.gz`, `mail.log.2.gz`, `mail.log.1`,
/// `mail.log`; date suffixes (`mail.log-20240101`) by date, before the live file.
pub fn order_rotated(mut paths: Vec<PathBuf>) -> Vec<PathBuf> {
    fn key(p: &Path) -> (String, i64, String) {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = name.strip_suffix(".gz").unwrap_or(&name).to_string();
        if let Some((base, n)) = name.rsplit_once('.')
            && let Ok(n) = n.parse::<i64>()
        {
            return (base.to_string(), -n, String::new());
        }
        if let Some((base, date)) = name.rsplit_once('-')
            && date.len() >= 8
            && date.bytes().all(|b| b.is_ascii_digit())
        {
            return (base.to_string(), -1, date.to_string());
        }
        (name, 0, String::new())
    }
    paths.sort_by_cached_key(|p| {
        let (base, rank, date) = key(p);
        (p.parent().map(Path::to_path_buf), base, rank, date)
    });
    paths
}

/// A chunk of whole lines, in a recycled buffer or in a mapped file.
pub enum Chunk {
    /// `buf[..len]` of a buffer the reader filled.
    Owned(Vec<u8>, usize),
    /// A range of a mapped file.
    Mapped(Arc<Mapped>, Range<usize>),
}

impl Chunk {
    /// The lines.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(buf, len) => &buf[..*len],
            Chunk::Mapped(map, r) => &map[r.clone()],
        }
    }
}

/// Opens a source when the reader gets to it (a log streamed from a server: started only
/// when it is read, so the servers' streams do not all wait open at once).
pub type Opener = Box<dyn FnOnce(Arc<AtomicU64>) -> io::Result<ChunkReader> + Send>;

/// One input: a plain file is mapped; `.gz`, stdin, pipes and files that cannot be mapped
/// are read into buffers.
pub enum Source {
    /// A mapped file and how far it has been handed out.
    Mapped(Arc<Mapped>, usize, Arc<AtomicU64>),
    /// Read into buffers.
    Stream(ChunkReader),
    /// Opened on its first read.
    Deferred(Option<Opener>, Arc<AtomicU64>),
}

impl Source {
    /// Opens a file (`-` is stdin); `read` counts the bytes handed out, for the progress bar.
    pub fn open(path: &Path, read: Arc<AtomicU64>) -> io::Result<Self> {
        if path != Path::new("-") {
            let file = File::open(path)?;
            let mut magic = [0u8; 2];
            let gz = std::os::unix::fs::FileExt::read_exact_at(&file, &mut magic, 0).is_ok()
                && magic == [0x1f, 0x8b];
            if !gz && let Some(map) = Mapped::new(&file) {
                return Ok(Source::Mapped(Arc::new(map), 0, read));
            }
        }
        ChunkReader::open(path, read).map(Source::Stream)
    }

    /// The next chunk; `buf` is a recycled buffer for streams (mapped files ignore it).
    pub fn next_chunk(&mut self, buf: Vec<u8>) -> io::Result<Option<Chunk>> {
        if let Source::Deferred(open, read) = self {
            let Some(open) = open.take() else {
                return Ok(None);
            };
            *self = Source::Stream(open(Arc::clone(read))?);
        }
        match self {
            Source::Deferred(..) => Ok(None),
            Source::Stream(r) => Ok(r.next_chunk(buf)?.map(|(b, len)| Chunk::Owned(b, len))),
            Source::Mapped(map, pos, read) => {
                let start = *pos;
                if start >= map.len() {
                    return Ok(None);
                }
                let mut end = (start + CHUNK).min(map.len());
                if end < map.len() {
                    end = memchr::memchr(b'\n', &map[end..]).map_or(map.len(), |i| end + i + 1);
                }
                *pos = end;
                read.fetch_add((end - start) as u64, Ordering::Relaxed);
                Ok(Some(Chunk::Mapped(Arc::clone(map), start..end)))
            }
        }
    }
}

/// Counts bytes as they are read, for the progress bar.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Reads one source as chunks ending at a line boundary.
pub struct ChunkReader {
    inner: Box<dyn Read + Send>,
    carry: Vec<u8>,
    done: bool,
    /// An error met after some data: returned on the call after that data.
    failed: Option<io::Error>,
}

impl ChunkReader {
    /// Opens a file (`-` is stdin); `read` counts the bytes read from disk.
    pub fn open(path: &Path, read: Arc<AtomicU64>) -> io::Result<Self> {
        let raw: Box<dyn Read + Send> = if path == Path::new("-") {
            Box::new(io::stdin())
        } else {
            Box::new(File::open(path)?)
        };
        Self::from_reader(raw, read)
    }

    /// Reads from any reader (a command's output), gunzipping when it starts gzipped.
    pub fn from_reader(raw: Box<dyn Read + Send>, read: Arc<AtomicU64>) -> io::Result<Self> {
        let mut buffered = BufReader::with_capacity(
            1 << 16,
            Counting {
                inner: raw,
                count: read,
            },
        );
        let magic = io::BufRead::fill_buf(&mut buffered)?;
        let inner: Box<dyn Read + Send> = if magic.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::read::MultiGzDecoder::new(buffered))
        } else {
            Box::new(buffered)
        };
        Ok(ChunkReader {
            inner,
            carry: Vec::new(),
            done: false,
            failed: None,
        })
    }

    /// The next chunk of whole lines, read into `buf` (a recycled buffer: its contents are
    /// overwritten, its length kept, so it is zeroed only once); the chunk is `buf[..len]`.
    /// The last chunk may end without a newline (a file cut mid-line). After an error the
    /// lines read before it are returned first, the error on the next call.
    pub fn next_chunk(&mut self, mut buf: Vec<u8>) -> io::Result<Option<(Vec<u8>, usize)>> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        if self.done && self.carry.is_empty() {
            return Ok(None);
        }
        let want = (self.carry.len() + CHUNK).max(CHUNK + CHUNK / 2);
        if buf.len() < want {
            buf.resize(want, 0);
        }
        let mut filled = self.carry.len();
        buf[..filled].copy_from_slice(&self.carry);
        self.carry.clear();
        while !self.done && filled < buf.len() {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) => self.done = true,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.done = true;
                    if filled == 0 {
                        return Err(e);
                    }
                    self.failed = Some(e);
                }
            }
        }
        let mut len = filled;
        if !self.done
            && let Some(nl) = memchr::memrchr(b'\n', &buf[..filled])
        {
            self.carry.extend_from_slice(&buf[nl + 1..filled]);
            len = nl + 1;
        }
        Ok((len > 0).then_some((buf, len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_sets_oldest_first() {
        let ps = [
            "/l/mail.log",
            "/l/mail.log.1",
            "/l/mail.log.10.gz",
            "/l/mail.log.2.gz",
        ]
        .map(PathBuf::from)
        .to_vec();
        let sorted = order_rotated(ps);
        let names: Vec<_> = sorted
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "/l/mail.log.10.gz",
                "/l/mail.log.2.gz",
                "/l/mail.log.1",
                "/l/mail.log"
            ]
        );
        let ps = [
            "/l/maillog",
            "/l/maillog-20240102",
            "/l/maillog-20240101.gz",
        ]
        .map(PathBuf::from)
        .to_vec();
        let names: Vec<_> = order_rotated(ps)
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "/l/maillog-20240101.gz",
                "/l/maillog-20240102",
                "/l/maillog"
            ]
        );
    }

    #[test]
    fn plain_files_are_mapped_in_line_chunks_and_gzip_is_streamed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let line = "Aug  1 12:00:00 h postfix/qmgr[1]: ABC: removed\n";
        let text = line.repeat(60_000) + "Aug  1 12:00:00 h postf";
        std::fs::write(&p, &text).unwrap();
        let mut src = Source::open(&p, Default::default()).unwrap();
        assert!(matches!(src, Source::Mapped(..)));
        let mut all = Vec::new();
        while let Some(c) = src.next_chunk(Vec::new()).unwrap() {
            all.push(c.bytes().to_vec());
        }
        assert!(all.len() > 1);
        assert!(all[..all.len() - 1].iter().all(|c| c.ends_with(b"\n")));
        assert_eq!(all.concat(), text.as_bytes());
        let gz = dir.path().join("log.1");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, text.as_bytes()).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        let src = Source::open(&gz, Default::default()).unwrap();
        assert!(matches!(src, Source::Stream(..)));
    }

    #[test]
    fn chunks_end_at_lines_and_keep_a_cut_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let line = "Aug  1 12:00:00 h postfix/qmgr[1]: ABC: removed\n";
        let text = line.repeat(60_000) + "Aug  1 12:00:00 h postf";
        std::fs::write(&p, &text).unwrap();
        let mut r = ChunkReader::open(&p, Default::default()).unwrap();
        let mut all = Vec::new();
        while let Some((buf, len)) = r.next_chunk(Vec::new()).unwrap() {
            all.push(buf[..len].to_vec());
        }
        assert!(all.len() > 1);
        for c in &all[..all.len() - 1] {
            assert!(c.ends_with(b"\n"));
        }
        assert_eq!(all.concat(), text.as_bytes());
    }
}

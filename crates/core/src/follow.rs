//! Following a growing log across rotation: each call gives the complete lines written since
//! the last, and a place that can be saved and resumed from. A log renamed away (a new file
//! under the name) or cut short (`copytruncate`) is read again from its start.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where a follower is in its file: saved between runs to resume.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    /// Bytes read (the end of the last complete line).
    pub offset: u64,
    /// The file's inode then (`None`: the file did not exist).
    pub inode: Option<u64>,
}

/// A follower of one log file.
#[derive(Debug, Clone)]
pub struct Follower {
    path: PathBuf,
    place: Place,
    missing: bool,
}

impl Follower {
    /// Follows `path` from its current end: what was logged before is not read.
    pub fn from_end(path: &Path) -> Self {
        let place = match std::fs::metadata(path) {
            Ok(m) => Place {
                offset: m.len(),
                inode: Some(m.ino()),
            },
            Err(_) => Place::default(),
        };
        Follower {
            path: path.to_path_buf(),
            place,
            missing: false,
        }
    }

    /// Follows `path` from a saved place.
    pub fn resume(path: &Path, place: Place) -> Self {
        Follower {
            path: path.to_path_buf(),
            place,
            missing: false,
        }
    }

    /// The place reached so far.
    pub fn place(&self) -> Place {
        self.place
    }

    /// Whether the file did not exist at the last poll.
    pub fn missing(&self) -> bool {
        self.missing
    }

    /// The file followed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The complete lines written since the last call, at most `max` bytes of them (the rest
    /// comes with the next call); a missing file gives nothing. With `skip_to_tail`, a
    /// backlog longer than `max` is skipped to its last `max` bytes (a first look at a huge
    /// log).
    pub fn poll(&mut self, max: u64, skip_to_tail: bool) -> std::io::Result<Vec<u8>> {
        let mut f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.missing = true;
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        self.missing = false;
        let meta = f.metadata()?;
        let (from, want) = self.place.plan(meta.ino(), meta.len(), max, skip_to_tail);
        f.seek(SeekFrom::Start(from))?;
        let mut buf = Vec::with_capacity(want as usize);
        (&mut f).take(want).read_to_end(&mut buf)?;
        Ok(self.place.take_lines(buf, from, max))
    }
}

impl Place {
    /// Where to read from, and how much, in a file now of this inode and length: a renamed
    /// (another inode under the name) or cut file from its start; at most `max` bytes, the
    /// last `max` with `skip_to_tail`. The remote follower's script does the same in sh.
    pub(crate) fn plan(
        &mut self,
        inode: u64,
        len: u64,
        max: u64,
        skip_to_tail: bool,
    ) -> (u64, u64) {
        if self.inode.is_some_and(|i| i != inode) || len < self.offset {
            self.offset = 0;
        }
        self.inode = Some(inode);
        let mut from = self.offset;
        if skip_to_tail {
            from = from.max(len.saturating_sub(max));
        }
        (from, (len - from.min(len)).min(max))
    }

    /// The complete lines of `buf` (read from `from`, at most `max` bytes), the place moved
    /// past them.
    pub(crate) fn take_lines(&mut self, mut buf: Vec<u8>, from: u64, max: u64) -> Vec<u8> {
        let end = match buf.iter().rposition(|b| *b == b'\n') {
            Some(i) => i + 1,
            // A line longer than `max`: skipped, or it would hold the follower forever.
            None if buf.len() as u64 == max && max > 0 => {
                self.offset = from + max;
                return Vec::new();
            }
            None => 0,
        };
        buf.truncate(end);
        self.offset = from + end as u64;
        buf
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The lines of a poll's bytes.
    pub(crate) fn lines(b: &[u8]) -> Vec<String> {
        String::from_utf8_lossy(b)
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn new_complete_lines_only_then_rotation_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        std::fs::write(&p, "old line\n").unwrap();
        let mut w = Follower::from_end(&p);
        assert!(w.poll(1 << 20, false).unwrap().is_empty());
        std::fs::write(&p, "old line\nnew one\nhalf").unwrap();
        assert_eq!(lines(&w.poll(1 << 20, false).unwrap()), ["new one"]);
        std::fs::write(&p, "old line\nnew one\nhalf line\n").unwrap();
        assert_eq!(lines(&w.poll(1 << 20, false).unwrap()), ["half line"]);
        // logrotate: the file is renamed and a new, longer one takes its name.
        std::fs::rename(&p, dir.path().join("mail.log.1")).unwrap();
        std::fs::write(&p, "rotated and already longer than before\nsecond\n").unwrap();
        assert_eq!(
            lines(&w.poll(1 << 20, false).unwrap()),
            ["rotated and already longer than before", "second"]
        );
        // copytruncate: same file, cut short.
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        std::fs::write(&p, "after truncation\n").unwrap();
        assert_eq!(
            lines(&w.poll(1 << 20, false).unwrap()),
            ["after truncation"]
        );
    }

    #[test]
    fn a_saved_place_resumes_and_a_huge_backlog_is_read_from_its_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        std::fs::write(&p, "a\nb\nc\n").unwrap();
        let mut w = Follower::resume(&p, Place::default());
        assert_eq!(lines(&w.poll(4, false).unwrap()), ["a", "b"]);
        let saved = w.place();
        let mut again = Follower::resume(&p, saved);
        assert_eq!(lines(&again.poll(1 << 20, false).unwrap()), ["c"]);
        let mut tail = Follower::resume(&p, Place::default());
        assert_eq!(lines(&tail.poll(2, true).unwrap()), ["c"]);
        assert!(
            Follower::from_end(&dir.path().join("missing"))
                .poll(10, false)
                .unwrap()
                .is_empty()
        );
        // A line longer than the limit does not block the follower.
        std::fs::write(&p, "0123456789\nshort\n").unwrap();
        let mut long = Follower::resume(&p, Place::default());
        assert!(long.poll(4, false).unwrap().is_empty());
        let mut got = Vec::new();
        for _ in 0..10 {
            got.extend(lines(&long.poll(6, false).unwrap()));
        }
        assert!(got.contains(&"short".to_string()), "{got:?}");
    }
}

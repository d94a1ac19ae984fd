//! Following a log on another server through its access: one fixed sh script per poll opens
//! the file, reports its inode and size from the open descriptor, decides where to read as
//! [`Place::plan`] does, and `dd` reads at most `max` bytes from there, so a rotation between
//! looking and reading cannot mix two files. Only new bytes cross the connection.
//! [`LogFollower`] is either kind, for callers that follow logs wherever they are.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mailfleet_remote::{Access, Cmd, Reach, RemoteError};

use crate::follow::{Follower, Place};

/// Arguments: path, known inode (`-`: none), offset, max, skip to tail (1/0). Prints
/// `missing`, or `INODE SIZE FROM WANT` and then the bytes.
const SCRIPT: &str = r#"f=$1 ino=$2 off=$3 max=$4 skip=$5
[ -e "$f" ] || { echo missing; exit 0; }
exec 3<"$f" || exit 1
set -- $(stat -L -c '%i %s' /dev/fd/3) || exit 1
[ -n "$2" ] || exit 1
if { [ "$ino" != - ] && [ "$ino" != "$1" ]; } || [ "$2" -lt "$off" ]; then off=0; fi
if [ "$skip" = 1 ] && [ $(($2 - max)) -gt "$off" ]; then off=$(($2 - max)); fi
want=$(($2 - off))
if [ "$want" -gt "$max" ]; then want=$max; fi
echo "$1 $2 $off $want"
[ "$want" -gt 0 ] || exit 0
exec dd bs=65536 skip="$off" count="$want" iflag=skip_bytes,count_bytes status=none <&3
"#;

/// Why a log could not be followed.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// Reading the file here failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The command on the server failed or did not answer.
    #[error("{path}: {source}")]
    Remote {
        /// `SERVER:PATH`.
        path: String,
        /// Why (whether a retry can help is in its kind).
        source: RemoteError,
    },
    /// The script's answer was not what it prints.
    #[error("{path}: unexpected answer from the server: {answer:?}")]
    Answer {
        /// `SERVER:PATH`.
        path: String,
        /// Its first line.
        answer: String,
    },
}

/// A follower of one log on a server, through its access.
#[derive(Debug, Clone)]
pub struct RemoteFollower {
    server: String,
    access: Access,
    path: PathBuf,
    place: Place,
    missing: bool,
}

impl RemoteFollower {
    /// Follows `path` on `server` from a saved place.
    pub fn resume(server: &str, access: &Access, path: &Path, place: Place) -> Self {
        RemoteFollower {
            server: server.into(),
            access: access.clone(),
            path: path.into(),
            place,
            missing: false,
        }
    }

    /// Follows `path` on `server` from its current end: what was logged before is not read.
    pub async fn from_end(
        reach: &Reach,
        server: &str,
        access: &Access,
        path: &Path,
        deadline: Duration,
    ) -> Result<Self, FollowError> {
        let mut f = Self::resume(server, access, path, Place::default());
        // Zero bytes from the tail: the place becomes the file's end.
        f.poll(reach, 0, true, deadline).await?;
        Ok(f)
    }

    /// The place reached so far.
    pub fn place(&self) -> Place {
        self.place
    }

    /// Whether the file did not exist at the last poll.
    pub fn missing(&self) -> bool {
        self.missing
    }

    /// `SERVER:PATH`, as errors name it.
    pub fn name(&self) -> String {
        format!("{}:{}", self.server, self.path.display())
    }

    /// As [`Follower::poll`], on the server: the complete lines written since the last call,
    /// at most `max` bytes; a missing file gives nothing.
    pub async fn poll(
        &mut self,
        reach: &Reach,
        max: u64,
        skip_to_tail: bool,
        deadline: Duration,
    ) -> Result<Vec<u8>, FollowError> {
        let inode = self.place.inode.map_or("-".to_string(), |i| i.to_string());
        let cmd = Cmd::new([
            "sh".to_string(),
            "-c".into(),
            SCRIPT.into(),
            "sh".into(),
            self.path.display().to_string(),
            inode,
            self.place.offset.to_string(),
            max.to_string(),
            if skip_to_tail { "1" } else { "0" }.into(),
        ])
        .deadline(deadline)
        .capture(
            usize::try_from(max)
                .unwrap_or(usize::MAX)
                .saturating_add(256),
        );
        let out = reach
            .check(&self.server, &self.access, &cmd)
            .await
            .map_err(|source| FollowError::Remote {
                path: self.name(),
                source,
            })?;
        let name = self.name();
        let bad = |answer: &[u8]| FollowError::Answer {
            path: name.clone(),
            answer: String::from_utf8_lossy(&answer[..answer.len().min(80)]).into_owned(),
        };
        let stdout = out.stdout;
        let nl = stdout
            .iter()
            .position(|c| *c == b'\n')
            .ok_or_else(|| bad(&stdout))?;
        let head = std::str::from_utf8(&stdout[..nl]).map_err(|_| bad(&stdout))?;
        self.missing = head == "missing";
        if self.missing {
            return Ok(Vec::new());
        }
        let nums: Vec<u64> = head
            .split(' ')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| bad(&stdout))?;
        let [inode, len, from, want] = nums[..] else {
            return Err(bad(&stdout));
        };
        // The script planned the read; the same plan here moves the place the same way.
        let planned = self.place.plan(inode, len, max, skip_to_tail);
        let data = stdout[nl + 1..].to_vec();
        if planned != (from, want) || data.len() as u64 > want {
            return Err(bad(&stdout));
        }
        Ok(self.place.take_lines(data, from, max))
    }
}

/// A log followed here or on a server.
#[derive(Debug, Clone)]
pub enum LogFollower {
    /// A file on this machine.
    Local(Follower),
    /// A file on a server reached through its access.
    Remote(RemoteFollower),
}

impl LogFollower {
    /// Follows `path` on `server` from a saved place, locally when its access is local.
    pub fn resume(server: &str, access: &Access, path: &Path, place: Place) -> Self {
        match access {
            Access::Local => LogFollower::Local(Follower::resume(path, place)),
            Access::Ssh(_) => {
                LogFollower::Remote(RemoteFollower::resume(server, access, path, place))
            }
        }
    }

    /// Follows `path` on `server` from its current end.
    pub async fn from_end(
        reach: &Reach,
        server: &str,
        access: &Access,
        path: &Path,
        deadline: Duration,
    ) -> Result<Self, FollowError> {
        Ok(match access {
            Access::Local => LogFollower::Local(Follower::from_end(path)),
            Access::Ssh(_) => LogFollower::Remote(
                RemoteFollower::from_end(reach, server, access, path, deadline).await?,
            ),
        })
    }

    /// Whether the file did not exist at the last poll.
    pub fn missing(&self) -> bool {
        match self {
            LogFollower::Local(f) => f.missing(),
            LogFollower::Remote(f) => f.missing(),
        }
    }

    /// The place reached so far.
    pub fn place(&self) -> Place {
        match self {
            LogFollower::Local(f) => f.place(),
            LogFollower::Remote(f) => f.place(),
        }
    }

    /// The complete lines written since the last call (see [`Follower::poll`]); a local file
    /// is read on a blocking thread.
    pub async fn poll(
        &mut self,
        reach: &Reach,
        max: u64,
        skip_to_tail: bool,
        deadline: Duration,
    ) -> Result<Vec<u8>, FollowError> {
        match self {
            LogFollower::Remote(f) => f.poll(reach, max, skip_to_tail, deadline).await,
            LogFollower::Local(f) => {
                let mut moved = f.clone();
                let path = f.path().display().to_string();
                let (moved, read) = tokio::task::spawn_blocking(move || {
                    let read = moved.poll(max, skip_to_tail);
                    (moved, read)
                })
                .await
                .map_err(|e| FollowError::Io {
                    path: path.clone(),
                    source: std::io::Error::other(e.to_string()),
                })?;
                *f = moved;
                read.map_err(|source| FollowError::Io { path, source })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::follow::tests::lines;

    /// The script, run through a local access (the same argument vector SSH would carry),
    /// follows as the local follower does: new complete lines, rotation, truncation, a tail,
    /// a line longer than the limit, a missing file.
    #[tokio::test]
    async fn the_script_follows_as_the_local_follower_does() {
        let reach = Reach::new();
        let d = Duration::from_secs(10);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        std::fs::write(&p, "old line\n").unwrap();
        let mut w = RemoteFollower::from_end(&reach, "here", &Access::Local, &p, d)
            .await
            .unwrap();
        assert_eq!(w.place().offset, 9);
        assert!(w.poll(&reach, 1 << 20, false, d).await.unwrap().is_empty());
        std::fs::write(&p, "old line\nnew one\nhalf").unwrap();
        assert_eq!(
            lines(&w.poll(&reach, 1 << 20, false, d).await.unwrap()),
            ["new one"]
        );
        std::fs::write(&p, "old line\nnew one\nhalf line\n").unwrap();
        assert_eq!(
            lines(&w.poll(&reach, 1 << 20, false, d).await.unwrap()),
            ["half line"]
        );
        std::fs::rename(&p, dir.path().join("mail.log.1")).unwrap();
        std::fs::write(&p, "rotated and already longer than before\nsecond\n").unwrap();
        assert_eq!(
            lines(&w.poll(&reach, 1 << 20, false, d).await.unwrap()),
            ["rotated and already longer than before", "second"]
        );
        std::fs::write(&p, "after truncation\n").unwrap();
        assert_eq!(
            lines(&w.poll(&reach, 1 << 20, false, d).await.unwrap()),
            ["after truncation"]
        );
        let mut tail = RemoteFollower::resume("here", &Access::Local, &p, Place::default());
        std::fs::write(&p, "a\nb\nc\n").unwrap();
        assert_eq!(lines(&tail.poll(&reach, 2, true, d).await.unwrap()), ["c"]);
        std::fs::write(&p, "0123456789\nshort\n").unwrap();
        let mut long = RemoteFollower::resume("here", &Access::Local, &p, Place::default());
        assert!(long.poll(&reach, 4, false, d).await.unwrap().is_empty());
        let mut got = Vec::new();
        for _ in 0..10 {
            got.extend(lines(&long.poll(&reach, 6, false, d).await.unwrap()));
        }
        assert!(got.contains(&"short".to_string()), "{got:?}");
        let missing = dir.path().join("missing");
        let mut m = RemoteFollower::from_end(&reach, "here", &Access::Local, &missing, d)
            .await
            .unwrap();
        assert!(m.poll(&reach, 10, false, d).await.unwrap().is_empty());
        assert!(m.missing());
        assert!(!w.missing());
        // A file that cannot be opened is an error naming it, not an empty log.
        let unreadable = dir.path().join("sub");
        std::fs::create_dir(&unreadable).unwrap();
        let mut u = RemoteFollower::resume("here", &Access::Local, &unreadable, Place::default());
        let e = u.poll(&reach, 10, false, d).await.unwrap_err();
        assert!(e.to_string().starts_with("here:"), "{e}");
    }
}

//! A command to run on a server (an argument vector, never a shell line) and what it gave
//! back, its output captured up to a bound and the rest counted.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _};

/// Output kept per stream by default; the rest is read and counted, never stored.
pub const DEFAULT_CAPTURE: usize = 4 << 20;

/// A command: program and arguments, passed to the server one by one (over SSH each is
/// quoted for the remote shell, so no argument is ever read as shell syntax).
#[derive(Debug, Clone)]
pub struct Cmd {
    /// Program, then arguments.
    pub argv: Vec<String>,
    /// What it reads on standard input (nothing when `None`).
    pub stdin: Option<Vec<u8>>,
    /// Everything, connecting included, must be done by then.
    pub deadline: Duration,
    /// Bytes kept of standard output and of standard error, each.
    pub capture: usize,
}

impl Cmd {
    /// A command with a 30 s deadline and the default capture.
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Cmd {
            argv: argv.into_iter().map(Into::into).collect(),
            stdin: None,
            deadline: Duration::from_secs(30),
            capture: DEFAULT_CAPTURE,
        }
    }

    /// Sets the deadline.
    pub fn deadline(mut self, d: Duration) -> Self {
        self.deadline = d;
        self
    }

    /// Gives it standard input.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Sets how much of each output stream is kept.
    pub fn capture(mut self, bytes: usize) -> Self {
        self.capture = bytes;
        self
    }

    /// The command as messages show it (arguments with spaces quoted; a script given to
    /// `sh -c` shown by its first line and size, so an error stays one readable line).
    pub fn display(&self) -> String {
        self.argv
            .iter()
            .map(|a| {
                if a.contains('\n') || a.len() > 120 {
                    let first = a.trim_start().lines().next().unwrap_or("");
                    let first: String = first.chars().take(40).collect();
                    format!("<script {first:?}... {} bytes>", a.len())
                } else if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'') {
                    format!("{a:?}")
                } else {
                    a.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What a command gave back.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// Its exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// Standard output, up to the capture bound.
    pub stdout: Vec<u8>,
    /// Standard error, up to the capture bound.
    pub stderr: Vec<u8>,
    /// Bytes of standard output past the bound (read and dropped).
    pub stdout_dropped: u64,
    /// Bytes of standard error past the bound.
    pub stderr_dropped: u64,
    /// How long it took, connecting included.
    pub elapsed: Duration,
}

impl Output {
    /// Whether it exited 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Standard output as text (invalid UTF-8 replaced).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// `exit 3`, `killed by a signal`.
    pub fn status_text(&self) -> String {
        match self.code {
            Some(c) => format!("exit {c}"),
            None => "killed by a signal".into(),
        }
    }

    /// The first lines of standard error, for messages.
    pub fn stderr_summary(&self) -> String {
        let text = String::from_utf8_lossy(&self.stderr);
        let mut s: String = text.trim().lines().take(5).collect::<Vec<_>>().join("; ");
        if s.len() > 500 {
            let mut cut = 500;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push('…');
        }
        s
    }
}

/// Reads a stream to its end, keeping `limit` bytes and counting the rest.
pub(crate) async fn read_bounded<R: AsyncRead + Unpin>(
    mut r: R,
    limit: usize,
) -> std::io::Result<(Vec<u8>, u64)> {
    let mut kept = Vec::new();
    let mut dropped = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok((kept, dropped));
        }
        let room = limit.saturating_sub(kept.len()).min(n);
        kept.extend_from_slice(&buf[..room]);
        dropped += (n - room) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_argument_is_shown_short() {
        let c = Cmd::new(["sh", "-c", "set -u\nx=1\necho \"$x\"\n", "sh", "a b"]);
        assert_eq!(
            c.display(),
            r#"sh -c <script "set -u"... 21 bytes> sh "a b""#
        );
    }

    #[tokio::test]
    async fn output_past_the_bound_is_counted_not_kept() {
        let data = vec![b'x'; 300_000];
        let (kept, dropped) = read_bounded(&data[..], 100_000).await.unwrap();
        assert_eq!((kept.len(), dropped), (100_000, 200_000));
        let (kept, dropped) = read_bounded(&b"short"[..], 100).await.unwrap();
        assert_eq!((kept.as_slice(), dropped), (&b"short"[..], 0));
    }

    #[test]
    fn commands_display_with_their_awkward_arguments_quoted() {
        let c = Cmd::new(["postsuper", "-c", "/etc/post fix", "-H", "ABC"]);
        assert_eq!(c.display(), "postsuper -c \"/etc/post fix\" -H ABC");
    }
}

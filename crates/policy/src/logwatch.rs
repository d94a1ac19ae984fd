//! Following Postfix's log for what the policy service cannot see itself: a message that a
//! later check (another restriction, a milter) rejected after mailfleet counted it gets its
//! count back, by queue ID; recipients rejected at RCPT feed compromised-account detection.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

/// What a log line says that matters here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    /// The message with this queue ID was rejected at end of data.
    Rejected {
        /// Its queue ID.
        queue_id: String,
    },
    /// A recipient was refused at RCPT.
    RecipientRejected {
        /// The envelope sender.
        sender: String,
    },
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(name)? + name.len();
    let rest = line.get(start..)?;
    rest.find('>').map(|end| &rest[..end])
}

/// Reads one line of Postfix's log.
pub fn classify(line: &str) -> Option<LogEvent> {
    for marker in [
        ": reject: END-OF-MESSAGE",
        ": milter-reject: END-OF-MESSAGE",
    ] {
        if let Some(at) = line.find(marker) {
            let before = &line[..at];
            let queue_id = before.rsplit(' ').next()?;
            if queue_id.is_empty() || queue_id == "NOQUEUE" {
                return None;
            }
            return Some(LogEvent::Rejected {
                queue_id: queue_id.to_string(),
            });
        }
    }
    if line.contains("NOQUEUE: reject: RCPT from") {
        let sender = field(line, " from=<")?;
        return (!sender.is_empty()).then(|| LogEvent::RecipientRejected {
            sender: sender.to_ascii_lowercase(),
        });
    }
    None
}

/// New lines of a growing log file (a rotated or truncated file is read from its start).
pub struct LogWatch {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl LogWatch {
    /// Follows `path` from its current end: what was logged before is not ours to judge.
    pub fn new(path: &Path) -> Self {
        let offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        LogWatch {
            path: path.to_path_buf(),
            offset,
            partial: Vec::new(),
        }
    }

    /// The complete lines written since the last call.
    pub fn poll(&mut self) -> std::io::Result<Vec<String>> {
        let mut f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let len = f.metadata()?.len();
        if len < self.offset {
            // Rotated or truncated: the new file from its start.
            self.offset = 0;
            self.partial.clear();
        }
        f.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        // At most 64 MiB a round: a huge backlog is read over several rounds.
        (&mut f).take(64 << 20).read_to_end(&mut buf)?;
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let Some(last) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Ok(Vec::new());
        };
        let complete: Vec<u8> = self.partial.drain(..=last).collect();
        Ok(String::from_utf8_lossy(&complete)
            .lines()
            .map(str::to_string)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_are_recognised() {
        assert_eq!(
            classify(
                "2026-11-24T10:00:00.1+00:00 mx1 postfix/smtpd[9]: 4F2A31C0D: reject: END-OF-MESSAGE from localhost[127.0.0.1]: 554 5.7.1 <x@y>: Recipient address rejected: no; from=<a@example.com> to=<x@y> proto=ESMTP helo=<h>"
            ),
            Some(LogEvent::Rejected {
                queue_id: "4F2A31C0D".into()
            })
        );
        assert_eq!(
            classify(
                "Nov 24 10:00:00 mx1 postfix/cleanup[9]: 4F2A31C0E: milter-reject: END-OF-MESSAGE from localhost[127.0.0.1]: 5.7.1 spam; from=<a@x> to=<b@y>"
            ),
            Some(LogEvent::Rejected {
                queue_id: "4F2A31C0E".into()
            })
        );
        assert_eq!(
            classify(
                "Nov 24 10:00:00 mx1 postfix/submission/smtpd[9]: NOQUEUE: reject: RCPT from x[192.0.2.1]: 550 5.1.1 <n@example.com>: Recipient address rejected: User unknown; from=<Spam@Example.com> to=<n@example.com> proto=ESMTP helo=<x>"
            ),
            Some(LogEvent::RecipientRejected {
                sender: "spam@example.com".into()
            })
        );
        assert_eq!(
            classify("Nov 24 10:00:00 mx1 postfix/qmgr[9]: 4F2A31C0D: removed"),
            None
        );
        assert_eq!(classify("garbage \u{0} line"), None);
    }

    #[test]
    fn only_new_complete_lines_are_read_and_rotation_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        std::fs::write(&p, "old line\n").unwrap();
        let mut w = LogWatch::new(&p);
        assert!(w.poll().unwrap().is_empty());
        std::fs::write(&p, "old line\nnew one\nhalf").unwrap();
        assert_eq!(w.poll().unwrap(), ["new one"]);
        std::fs::write(&p, "old line\nnew one\nhalf line\n").unwrap();
        assert_eq!(w.poll().unwrap(), ["half line"]);
        std::fs::write(&p, "rotated\n").unwrap();
        assert_eq!(w.poll().unwrap(), ["rotated"]);
    }
}

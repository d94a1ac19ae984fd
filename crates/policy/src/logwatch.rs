//! Following Postfix's log for what the policy service cannot see itself: a message that a
//! later check (another restriction, a milter, cleanup's header or body checks) rejected
//! after mailfleet counted it gets its count back, by queue ID; recipients rejected at RCPT
//! feed compromised-account detection. Lines are read by the shared classifier (`maillog`),
//! the file by the shared follower, on the MTA through its access (`[policy] mta`).

use std::path::Path;
use std::time::Duration;

use mailfleet_core::follow_remote::{FollowError, LogFollower};
use mailfleet_core::postfix::Postfix;
use mailfleet_maillog::event::{Action, Kind, Stage};
use mailfleet_maillog::{Hosts, classify_line};

/// At most this much of the log is read per round: a huge backlog is read over several.
const MAX_READ: u64 = 64 << 20;

/// What a log line says that matters here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    /// The message with this queue ID was rejected after its data was received.
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

/// What one classified line means here.
fn event(kind: Kind) -> Option<LogEvent> {
    let Kind::Reject(r) = kind else { return None };
    if !matches!(r.action, Action::Reject | Action::MilterReject) {
        return None;
    }
    match (r.stage, r.qid) {
        (stage, Some(qid)) if stage.after_data() => Some(LogEvent::Rejected {
            queue_id: String::from_utf8_lossy(qid.as_bytes()).into_owned(),
        }),
        (Stage::Rcpt, _) => r
            .from
            .filter(|s| !s.is_empty())
            .map(|s| LogEvent::RecipientRejected {
                sender: s.as_str().to_ascii_lowercase(),
            }),
        _ => None,
    }
}

/// Reads one line of Postfix's log.
pub fn classify(line: &str) -> Option<LogEvent> {
    let mut hosts = Hosts::default();
    event(classify_line(line.as_bytes(), &mut hosts).kind)
}

/// How long one read of the log may take on the MTA.
const READ_DEADLINE: Duration = Duration::from_secs(30);

/// The new lines of Postfix's log, classified.
pub struct LogWatch {
    follower: LogFollower,
    postfix: Postfix,
    hosts: Hosts,
}

impl LogWatch {
    /// Follows `path` on the MTA `postfix` runs on, from its current end: what was logged
    /// before is not ours to judge.
    pub async fn new(postfix: &Postfix, path: &Path) -> Result<Self, FollowError> {
        let follower = LogFollower::from_end(
            postfix.reach(),
            &postfix.server,
            &postfix.access,
            path,
            READ_DEADLINE,
        )
        .await?;
        Ok(LogWatch {
            follower,
            postfix: postfix.clone(),
            hosts: Hosts::default(),
        })
    }

    /// What the lines written since the last call say.
    pub async fn poll(&mut self) -> Result<Vec<LogEvent>, FollowError> {
        let bytes = self
            .follower
            .poll(self.postfix.reach(), MAX_READ, false, READ_DEADLINE)
            .await?;
        let mut out = Vec::new();
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if let Some(e) = event(classify_line(line, &mut self.hosts).kind) {
                out.push(e);
            }
        }
        // The host table only grows with distinct host names: a few per log.
        Ok(out)
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
                "Nov 24 10:00:00 mx1 postfix/cleanup[9]: 4F2A31C0F: reject: header Subject: win from x[192.0.2.1]; from=<a@x> to=<b@y> proto=ESMTP helo=<x>: 5.7.1 no"
            ),
            Some(LogEvent::Rejected {
                queue_id: "4F2A31C0F".into()
            }),
            "cleanup's header checks refuse the whole message"
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
            classify(
                "Nov 24 10:00:00 mx1 postfix/smtpd[9]: 4F2A31C10: reject: RCPT from x[192.0.2.1]: 550 5.1.1 <m@example.com>: User unknown; from=<s@example.com> to=<m@example.com> proto=ESMTP helo=<x>"
            ),
            Some(LogEvent::RecipientRejected {
                sender: "s@example.com".into()
            }),
            "a later recipient of a message refused: the message itself goes on"
        );
        assert_eq!(
            classify("Nov 24 10:00:00 mx1 postfix/qmgr[9]: 4F2A31C0D: removed"),
            None
        );
        assert_eq!(classify("garbage \u{0} line"), None);
    }

    #[tokio::test]
    async fn only_new_lines_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        let line = "Nov 24 10:00:00 mx1 postfix/smtpd[9]: 4F2A31C0D: reject: END-OF-MESSAGE from x[1.2.3.4]: 554 no; from=<a@b> to=<c@d>\n";
        std::fs::write(&p, line).unwrap();
        let mut w = LogWatch::new(&Postfix::local(None), &p).await.unwrap();
        assert!(
            w.poll().await.unwrap().is_empty(),
            "what was there before is not read"
        );
        std::fs::write(&p, format!("{line}{}", line.replace("C0D", "C0E"))).unwrap();
        assert_eq!(
            w.poll().await.unwrap(),
            [LogEvent::Rejected {
                queue_id: "4F2A31C0E".into()
            }]
        );
    }
}

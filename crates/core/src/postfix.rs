//! Postfix's own tools, run with a deadline on the MTA through its access (SSH or local): its
//! queue read once from `postqueue -j` for the queue check and the release of held mail, and
//! `postsuper`/`postqueue` actions on it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mailfleet_remote::{Access, Cmd, Reach, RemoteError, RemoteErrorKind};

use serde::Deserialize;

/// Why a Postfix tool failed.
#[derive(Debug, thiserror::Error)]
pub enum PostfixError {
    /// It could not be started.
    #[error("{command}: {source}")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// It exited with an error.
    #[error("{command}: {message}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status and error output.
        message: String,
    },
    /// It did not finish in time (it was killed).
    #[error("{command}: no answer within {} s", .timeout.as_secs())]
    Timeout {
        /// The command line.
        command: String,
        /// The deadline.
        timeout: Duration,
    },
    /// The MTA could not be reached.
    #[error(transparent)]
    Unreachable(RemoteError),
    /// Its output is not what this version of mailfleet reads.
    #[error("{command}: unreadable output: {message}")]
    Output {
        /// The command.
        command: String,
        /// What did not parse.
        message: String,
    },
}

/// One message in the queue, as `postqueue -j` describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct QueueEntry {
    /// `active`, `deferred`, `hold`, `incoming`, `maildrop`.
    pub queue_name: String,
    /// Its queue ID.
    pub queue_id: String,
    /// When it arrived (seconds since the epoch).
    pub arrival_time: Option<i64>,
    /// Its size in bytes.
    #[serde(default)]
    pub message_size: Option<u64>,
    /// The envelope sender.
    #[serde(default)]
    pub sender: String,
    /// Its recipients still to deliver to.
    #[serde(default)]
    pub recipients: Vec<QueueRecipient>,
}

/// A recipient of a queued message.
#[derive(Debug, Clone, Deserialize)]
pub struct QueueRecipient {
    /// The address.
    pub address: String,
    /// Why delivery waits, when it was tried.
    #[serde(default)]
    pub delay_reason: Option<String>,
}

/// `postqueue -j` output: one JSON object per line.
pub fn parse_queue(json_lines: &str) -> Result<Vec<QueueEntry>, PostfixError> {
    json_lines
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| PostfixError::Output {
                command: "postqueue -j".into(),
                message: format!("{e}: {}", l.chars().take(120).collect::<String>()),
            })
        })
        .collect()
}

/// One MTA's Postfix instance and the way to its tools.
#[derive(Debug, Clone)]
pub struct Postfix {
    reach: Reach,
    /// The MTA's name (`local` for the machine mailfleet runs on).
    pub server: String,
    /// How its tools are run.
    pub access: Access,
    /// Its config directory (`-c`); the default instance when `None`.
    pub conf: Option<PathBuf>,
}

impl Postfix {
    /// The instance whose config directory is `conf` on `server`, reached through `access`.
    pub fn new(reach: &Reach, server: &str, access: &Access, conf: Option<&Path>) -> Self {
        Postfix {
            reach: reach.clone(),
            server: server.to_string(),
            access: access.clone(),
            conf: conf.map(Path::to_path_buf),
        }
    }

    /// The connections its tools are run over (shared with every clone).
    pub fn reach(&self) -> &Reach {
        &self.reach
    }

    /// An instance on this machine.
    pub fn local(conf: Option<&Path>) -> Self {
        Postfix::new(&Reach::new(), "local", &Access::Local, conf)
    }

    /// Runs a Postfix tool (`postqueue`, `postsuper`) of this instance, killed at the
    /// deadline; its standard output.
    pub async fn run(
        &self,
        program: &str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<String, PostfixError> {
        let mut argv = vec![program.to_string()];
        if let Some(c) = &self.conf {
            argv.push("-c".into());
            argv.push(c.display().to_string());
        }
        argv.extend(args.iter().map(|a| a.to_string()));
        let command = format!("{program} {}", args.join(" "));
        let cmd = Cmd::new(argv).deadline(timeout);
        match self.reach.check(&self.server, &self.access, &cmd).await {
            Ok(out) => Ok(out.stdout_text()),
            Err(e) => Err(match e.kind {
                RemoteErrorKind::Timeout { .. } => PostfixError::Timeout {
                    command: format!("{}: {command}", self.server),
                    timeout,
                },
                RemoteErrorKind::Failed { status, stderr, .. } => PostfixError::Failed {
                    command: format!("{}: {command}", self.server),
                    message: format!("{status}: {stderr}"),
                },
                RemoteErrorKind::Spawn { message, .. } => PostfixError::Spawn {
                    command,
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, message),
                },
                _ => PostfixError::Unreachable(e),
            }),
        }
    }

    /// Its queue.
    pub async fn queue(&self, timeout: Duration) -> Result<Vec<QueueEntry>, PostfixError> {
        parse_queue(&self.run("postqueue", &["-j"], timeout).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postqueue_json_lines_are_read_and_junk_is_named() {
        let text = r#"{"queue_name": "hold", "queue_id": "4F2A31C0D", "arrival_time": 1795000000, "message_size": 812, "forced_expire": false, "sender": "alice@example.com", "recipients": [{"address": "bob@example.com"}]}
{"queue_name": "deferred", "queue_id": "4F2A31C0E", "arrival_time": 1795000100, "sender": "", "recipients": [{"address": "x@y.test", "delay_reason": "connect to y.test: Connection refused"}]}
"#;
        let q = parse_queue(text).unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(
            (q[0].queue_name.as_str(), q[0].queue_id.as_str()),
            ("hold", "4F2A31C0D")
        );
        assert_eq!(q[0].message_size, Some(812));
        assert_eq!(
            q[1].recipients[0].delay_reason.as_deref(),
            Some("connect to y.test: Connection refused")
        );
        assert!(parse_queue("").unwrap().is_empty());
        let e = parse_queue("postqueue: fatal: not JSON\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("postqueue -j") && e.contains("not JSON"), "{e}");
    }
}

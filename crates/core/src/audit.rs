//! The audit log (`DATA_DIR/audit.log`): every action that changes something, from the
//! command line or the web page, with who took it, from where, what and the result. Each
//! action is two JSON lines, one when it begins (so an action whose process was killed is
//! still on record) and one when it ends. mailfleet only ever appends to the file (opened
//! `O_APPEND`, one write a line, synced before the action goes on) and never rewrites it.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The audit log could not be written or read.
#[derive(Debug, thiserror::Error)]
#[error("audit log {path}: {message}")]
pub struct AuditError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// Who acts, through what, from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The operator, or the Unix user for the command line.
    pub who: String,
    /// `cli` or `web`.
    pub via: String,
    /// Where from: the client's address, or this machine and the terminal.
    pub from: String,
}

/// One line of the log.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Line {
    id: String,
    time: DateTime<Utc>,
    #[serde(flatten)]
    begin: Option<Begin>,
    result: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Begin {
    #[serde(flatten)]
    actor: Actor,
    action: String,
    args: Vec<String>,
}

/// One action as the log tells it.
#[derive(Debug, Clone, Serialize)]
pub struct Action {
    /// Its id (the two lines share it).
    pub id: String,
    /// When it began.
    pub time: DateTime<Utc>,
    /// Who took it.
    #[serde(flatten)]
    pub actor: Actor,
    /// What (`accounts lock`, `policy release`, ...).
    pub action: String,
    /// Its arguments as given.
    pub args: Vec<String>,
    /// When it ended (`None`: still running, or its process was killed).
    pub ended: Option<DateTime<Utc>>,
    /// `ok`, `exit N` or `error: ...`.
    pub result: Option<String>,
}

/// What [`AuditLog::read`] found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Read {
    /// The actions, oldest first.
    pub actions: Vec<Action>,
    /// Lines that are not the log's (line number and why), left out; the rest is read.
    pub damaged: Vec<(usize, String)>,
}

/// The audit log of one data directory.
pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    /// The log in `data_dir` (created on its first line).
    pub fn new(data_dir: &Path) -> AuditLog {
        AuditLog {
            path: data_dir.join("audit.log"),
        }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn fail(&self, e: impl std::fmt::Display) -> AuditError {
        AuditError {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    fn append(&self, line: &Line) -> Result<(), AuditError> {
        let mut text = serde_json::to_string(line).map_err(|e| self.fail(e))?;
        text.push('\n');
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.fail(e))?;
        }
        let mut f = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o640)
                .open(&self.path)
                .map_err(|e| self.fail(e))?
        };
        // One write of the whole line: with O_APPEND, lines of processes writing at once
        // do not interleave.
        f.write_all(text.as_bytes()).map_err(|e| self.fail(e))?;
        f.sync_data().map_err(|e| self.fail(e))
    }

    /// Records that `actor` begins `action` with `args`; its id, for [`AuditLog::end`].
    pub fn begin(
        &self,
        actor: &Actor,
        action: &str,
        args: &[String],
    ) -> Result<String, AuditError> {
        let now = Utc::now();
        let id = format!("{}-{}", now.format("%Y%m%dT%H%M%S%.6f"), std::process::id());
        self.append(&Line {
            id: id.clone(),
            time: now,
            begin: Some(Begin {
                actor: actor.clone(),
                action: action.to_string(),
                args: args.to_vec(),
            }),
            result: None,
        })?;
        Ok(id)
    }

    /// Records the result of action `id`.
    pub fn end(&self, id: &str, result: &str) -> Result<(), AuditError> {
        self.append(&Line {
            id: id.to_string(),
            time: Utc::now(),
            begin: None,
            result: Some(result.to_string()),
        })
    }

    /// Every action that began at or after `since`; a file not there yet holds none.
    pub fn read(&self, since: Option<DateTime<Utc>>) -> Result<Read, AuditError> {
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Read::default()),
            Err(e) => return Err(self.fail(e)),
        };
        let mut read = Read::default();
        let mut at: std::collections::HashMap<String, usize> = Default::default();
        for (i, raw) in text.split(|b| *b == b'\n').enumerate() {
            if raw.is_empty() {
                continue;
            }
            let line: Line = match serde_json::from_slice(raw) {
                Ok(l) => l,
                Err(e) => {
                    // A line cut short by a crash, or not ours: said, never the end of it.
                    read.damaged.push((i + 1, e.to_string()));
                    continue;
                }
            };
            match line.begin {
                Some(b) => {
                    at.insert(line.id.clone(), read.actions.len());
                    read.actions.push(Action {
                        id: line.id,
                        time: line.time,
                        actor: b.actor,
                        action: b.action,
                        args: b.args,
                        ended: None,
                        result: None,
                    });
                }
                None => match at.get(&line.id).and_then(|n| read.actions.get_mut(*n)) {
                    Some(a) => {
                        a.ended = Some(line.time);
                        a.result = line.result;
                    }
                    None => read
                        .damaged
                        .push((i + 1, format!("the end of {}, which never began", line.id))),
                },
            }
        }
        if let Some(since) = since {
            read.actions.retain(|a| a.time >= since);
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn actions_are_appended_and_a_damaged_line_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path());
        let me = Actor {
            who: "alice".into(),
            via: "cli".into(),
            from: "host1 pts/0".into(),
        };
        let a = log
            .begin(&me, "accounts lock", &["bob@example.com".into()])
            .unwrap();
        log.end(&a, "ok").unwrap();
        let before = std::fs::read(log.path()).unwrap();
        // A crash in the middle of a line, then a killed action.
        std::fs::OpenOptions::new()
            .append(true)
            .open(log.path())
            .unwrap()
            .write_all(b"{\"id\":\"x\",\"ti")
            .unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(log.path())
            .unwrap()
            .write_all(b"\n")
            .unwrap();
        let b = log.begin(&me, "upgrade run", &[]).unwrap();
        let after = std::fs::read(log.path()).unwrap();
        assert_eq!(&after[..before.len()], &before[..], "rewritten");
        let r = log.read(None).unwrap();
        assert_eq!(r.actions.len(), 2);
        assert_eq!(r.actions[0].result.as_deref(), Some("ok"));
        assert_eq!(r.actions[0].actor, me);
        assert_eq!(r.actions[1].id, b);
        assert!(r.actions[1].result.is_none());
        assert_eq!(r.damaged.len(), 1);
        assert_eq!(r.damaged[0].0, 3);
        let later = log
            .read(Some(Utc::now() + chrono::Duration::hours(1)))
            .unwrap();
        assert!(later.actions.is_empty());
    }
}

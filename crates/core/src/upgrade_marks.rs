//! Servers marked for upgrade and not yet upgraded (`DATA_DIR/upgrade-marks.db`): an upgrade
//! marks the servers it will patch and clears each once it is done, and mailbox moves never
//! place a mailbox on a marked store (it would only have to move again, or wait while the
//! store is down). Shared by the capabilities that plan around upgrades.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, params};

/// One marked server.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mark {
    /// The server.
    pub server: String,
    /// Why (the admin's words, or the upgrade run that marked it).
    pub reason: String,
    /// When it was marked (Unix s).
    pub since: i64,
}

/// The marks file failed.
#[derive(Debug, thiserror::Error)]
#[error("upgrade marks {path}: {message}")]
pub struct MarksError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// The marks of one data directory.
pub struct UpgradeMarks {
    path: PathBuf,
    conn: Connection,
}

impl UpgradeMarks {
    /// Opens (creating) the marks in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, MarksError> {
        let path = data_dir.join("upgrade-marks.db");
        let err = |e: &dyn std::fmt::Display| MarksError {
            path: path.clone(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(data_dir).map_err(|e| err(&e))?;
        let conn = Connection::open(&path).map_err(|e| err(&e))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(|e| err(&e))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS marks (
                server TEXT PRIMARY KEY, reason TEXT NOT NULL, since INTEGER NOT NULL)",
        )
        .map_err(|e| err(&e))?;
        Ok(UpgradeMarks { path, conn })
    }

    fn err(&self, e: rusqlite::Error) -> MarksError {
        MarksError {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Marks `server` (again: the reason is replaced, the time kept).
    pub fn mark(&self, server: &str, reason: &str) -> Result<(), MarksError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.conn
            .execute(
                "INSERT INTO marks (server, reason, since) VALUES (?1, ?2, ?3)
                 ON CONFLICT(server) DO UPDATE SET reason = excluded.reason",
                params![server, reason, now],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Clears `server`'s mark (upgraded, or no longer planned); whether it had one.
    pub fn clear(&self, server: &str) -> Result<bool, MarksError> {
        self.conn
            .execute("DELETE FROM marks WHERE server = ?1", params![server])
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// Every mark, by server name.
    pub fn list(&self) -> Result<Vec<Mark>, MarksError> {
        let mut stmt = self
            .conn
            .prepare("SELECT server, reason, since FROM marks ORDER BY server")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Mark {
                    server: r.get(0)?,
                    reason: r.get(1)?,
                    since: r.get(2)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn marks_persist_until_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let m = UpgradeMarks::open(dir.path()).unwrap();
        m.mark("store1", "dovecot 2.3.21").unwrap();
        m.mark("store1", "dovecot 2.3.22").unwrap();
        m.mark("mx1", "postfix").unwrap();
        drop(m);
        let m = UpgradeMarks::open(dir.path()).unwrap();
        let all = m.list().unwrap();
        assert_eq!(
            all.iter()
                .map(|x| (x.server.as_str(), x.reason.as_str()))
                .collect::<Vec<_>>(),
            [("mx1", "postfix"), ("store1", "dovecot 2.3.22")]
        );
        assert!(m.clear("store1").unwrap());
        assert!(!m.clear("store1").unwrap());
        assert_eq!(m.list().unwrap().len(), 1);
    }
}

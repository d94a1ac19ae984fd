//! The move journal (`DATA_DIR/moves.db`): every account's move as a persisted state machine,
//! written before each step is taken, so a move killed at any moment is continued by
//! `move resume` from its recorded phase, `move abort` can undo what a move holds, and
//! `move status` shows every move of every batch.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mailfleet_core::child::is_mailfleet as alive;
use rusqlite::{Connection, OptionalExtension, params};

pub use crate::entry::Entry;
pub use crate::error::JournalError;
pub use crate::phase::Phase;

/// The journal of every move.
pub struct Journal {
    path: PathBuf,
    conn: std::sync::Mutex<Connection>,
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

const COLUMNS: &str = "id, batch, address, source, target, phase, passes, sync_state, last_pass_ms, \
     first_pass_ms, messages, bytes, lock_started_ms, lock_ms, error, owner, created, updated, \
     old_digest, purged, waiting";

impl Journal {
    /// Opens (creating) the journal in the data directory.
    pub fn open(data_dir: &Path) -> Result<Self, JournalError> {
        std::fs::create_dir_all(data_dir).map_err(|source| JournalError::Io {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join("moves.db");
        let err = |source| JournalError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        // A step is taken only after its phase is on disk.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS batches (
                id INTEGER PRIMARY KEY, started INTEGER NOT NULL, command TEXT NOT NULL,
                finished INTEGER, stopped TEXT);
             CREATE TABLE IF NOT EXISTS moves (
                id INTEGER PRIMARY KEY, batch INTEGER NOT NULL, address TEXT NOT NULL,
                source TEXT NOT NULL, target TEXT NOT NULL, phase TEXT NOT NULL,
                passes INTEGER NOT NULL DEFAULT 0, sync_state TEXT NOT NULL DEFAULT '',
                last_pass_ms REAL, first_pass_ms REAL, messages INTEGER NOT NULL DEFAULT 0,
                bytes INTEGER NOT NULL DEFAULT 0, lock_started_ms INTEGER, lock_ms REAL,
                error TEXT, owner INTEGER, created INTEGER NOT NULL, updated INTEGER NOT NULL,
                old_digest TEXT, purged INTEGER, waiting TEXT);
             CREATE UNIQUE INDEX IF NOT EXISTS one_open_move ON moves(address)
                WHERE phase NOT IN ('done', 'failed', 'aborted');",
        )
        .map_err(err)?;
        // Journals written before moves could wait for a store's load.
        let has_waiting: bool = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('moves') WHERE name = 'waiting'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(err)?
            > 0;
        if !has_waiting {
            conn.execute("ALTER TABLE moves ADD COLUMN waiting TEXT", [])
                .map_err(err)?;
        }
        Ok(Journal {
            path,
            conn: std::sync::Mutex::new(conn),
        })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> JournalError + '_ {
        |source| JournalError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, JournalError> {
        // A panic while the lock was held leaves the connection usable: SQLite rolled back.
        let conn = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&conn).map_err(self.err())
    }

    /// Starts a batch for `command` (what the admin asked, for `move status`).
    pub fn begin_batch(&self, command: &str) -> Result<i64, JournalError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO batches (started, command) VALUES (?1, ?2)",
                params![now_s(), command],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Records that a batch is over (`stopped`: why it stopped early).
    pub fn end_batch(&self, batch: i64, stopped: Option<&str>) -> Result<(), JournalError> {
        self.with(|c| {
            c.execute(
                "UPDATE batches SET finished = ?2, stopped = ?3 WHERE id = ?1",
                params![batch, now_s(), stopped],
            )
            .map(|_| ())
        })
    }

    /// Plans the move of `address` from `source` to `target` in `batch`; refused while the
    /// account has another move that is not over.
    pub fn plan(
        &self,
        batch: i64,
        address: &str,
        source: &str,
        target: &str,
        messages: u64,
        bytes: u64,
    ) -> Result<Entry, JournalError> {
        if let Some(open) = self.open_move(address)? {
            return Err(JournalError::Busy {
                address: address.into(),
                id: open.id,
                phase: open.phase,
            });
        }
        let id = self.with(|c| {
            c.execute(
                "INSERT INTO moves (batch, address, source, target, phase, messages, bytes, created, updated)
                 VALUES (?1, ?2, ?3, ?4, 'planned', ?5, ?6, ?7, ?7)",
                params![batch, address, source, target, messages as i64, bytes as i64, now_s()],
            )?;
            Ok(c.last_insert_rowid())
        })?;
        self.get(id)
    }

    fn row(&self, r: &rusqlite::Row<'_>) -> Result<Result<Entry, String>, rusqlite::Error> {
        let phase: String = r.get(5)?;
        let Some(p) = Phase::parse(&phase) else {
            return Ok(Err(phase));
        };
        Ok(Ok(Entry {
            id: r.get(0)?,
            batch: r.get(1)?,
            address: r.get(2)?,
            source: r.get(3)?,
            target: r.get(4)?,
            phase: p,
            passes: r.get(6)?,
            sync_state: r.get(7)?,
            last_pass_ms: r.get(8)?,
            first_pass_ms: r.get(9)?,
            messages: r.get::<_, i64>(10)?.max(0) as u64,
            bytes: r.get::<_, i64>(11)?.max(0) as u64,
            lock_started_ms: r.get(12)?,
            lock_ms: r.get(13)?,
            error: r.get(14)?,
            owner: r.get(15)?,
            created: r.get(16)?,
            updated: r.get(17)?,
            old_digest: r.get(18)?,
            purged: r.get(19)?,
            waiting: r.get(20)?,
        }))
    }

    fn query(
        &self,
        filter: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<Entry>, JournalError> {
        let rows = self.with(|c| {
            let mut stmt =
                c.prepare(&format!("SELECT {COLUMNS} FROM moves {filter} ORDER BY id"))?;
            let rows = stmt.query_map(args, |r| {
                let id: i64 = r.get(0)?;
                Ok((id, self.row(r)?))
            })?;
            rows.collect::<Result<Vec<_>, _>>()
        })?;
        rows.into_iter()
            .map(|(id, r)| {
                r.map_err(|phase| JournalError::Phase {
                    path: self.path.clone(),
                    id,
                    phase,
                })
            })
            .collect()
    }

    /// One move.
    pub fn get(&self, id: i64) -> Result<Entry, JournalError> {
        self.query("WHERE id = ?1", &[&id])?
            .pop()
            .ok_or_else(|| JournalError::Sqlite {
                path: self.path.clone(),
                source: rusqlite::Error::QueryReturnedNoRows,
            })
    }

    /// The account's move that is not over, if it has one.
    pub fn open_move(&self, address: &str) -> Result<Option<Entry>, JournalError> {
        Ok(self
            .query(
                "WHERE address = ?1 AND phase NOT IN ('done', 'failed', 'aborted')",
                &[&address],
            )?
            .pop())
    }

    /// Every move, oldest first.
    pub fn all(&self) -> Result<Vec<Entry>, JournalError> {
        self.query("", &[])
    }

    /// Every move not over, oldest first.
    pub fn unfinished(&self) -> Result<Vec<Entry>, JournalError> {
        self.query("WHERE phase NOT IN ('done', 'failed', 'aborted')", &[])
    }

    /// The moves of one batch.
    pub fn batch(&self, batch: i64) -> Result<Vec<Entry>, JournalError> {
        self.query("WHERE batch = ?1", &[&batch])
    }

    /// The latest batch's number, if there was one.
    pub fn latest_batch(&self) -> Result<Option<i64>, JournalError> {
        self.with(|c| {
            c.query_row("SELECT max(id) FROM batches", [], |r| r.get(0))
                .optional()
                .map(Option::flatten)
        })
    }

    /// Makes this process the one running the move: refused while another live mailfleet
    /// process holds it.
    pub fn claim(&self, id: i64) -> Result<Entry, JournalError> {
        let me = std::process::id();
        let entry = self.get(id)?;
        if let Some(pid) = entry.owner
            && pid != me
            && alive(pid)
        {
            return Err(JournalError::Owned {
                id,
                address: entry.address,
                pid,
            });
        }
        self.with(|c| {
            c.execute(
                "UPDATE moves SET owner = ?2, updated = ?3 WHERE id = ?1",
                params![id, me, now_s()],
            )
            .map(|_| ())
        })?;
        self.get(id)
    }

    /// Lets go of a move (it is over, or this process stops).
    pub fn release(&self, id: i64) -> Result<(), JournalError> {
        self.with(|c| {
            c.execute("UPDATE moves SET owner = NULL WHERE id = ?1", params![id])
                .map(|_| ())
        })
    }

    /// Records the move's new phase.
    pub fn set_phase(&self, id: i64, phase: Phase) -> Result<(), JournalError> {
        self.with(|c| {
            c.execute(
                "UPDATE moves SET phase = ?2, updated = ?3 WHERE id = ?1",
                params![id, phase.as_str(), now_s()],
            )
            .map(|_| ())
        })
    }

    /// Records a pass: its copy state and how long it took.
    pub fn record_pass(&self, id: i64, state: &str, elapsed: Duration) -> Result<(), JournalError> {
        let ms = elapsed.as_secs_f64() * 1000.0;
        self.with(|c| {
            c.execute(
                "UPDATE moves SET passes = passes + 1, sync_state = ?2, last_pass_ms = ?3,
                 first_pass_ms = coalesce(first_pass_ms, ?3), waiting = NULL, updated = ?4
                 WHERE id = ?1",
                params![id, state, ms, now_s()],
            )
            .map(|_| ())
        })
    }

    /// Records what the move waits for (`None`: nothing any more).
    pub fn waiting(&self, id: i64, why: Option<&str>) -> Result<(), JournalError> {
        self.with(|c| {
            c.execute(
                "UPDATE moves SET waiting = ?2, updated = ?3 WHERE id = ?1",
                params![id, why, now_s()],
            )
            .map(|_| ())
        })
    }

    /// Records that the lock begins now (kept when the lock is taken again on resume).
    pub fn lock_begins(&self, id: i64) -> Result<(), JournalError> {
        self.with(|c| {
            c.execute(
                "UPDATE moves SET phase = 'locked', lock_started_ms = coalesce(lock_started_ms, ?2),
                 updated = ?3 WHERE id = ?1",
                params![id, now_ms(), now_s()],
            )
            .map(|_| ())
        })
    }

    /// Records that the lock is over, with how long it lasted.
    pub fn lock_ends(&self, id: i64) -> Result<(), JournalError> {
        self.with(|c| {
            c.execute(
                "UPDATE moves SET lock_ms = CAST(?2 - lock_started_ms AS REAL), updated = ?3
                 WHERE id = ?1 AND lock_started_ms IS NOT NULL AND lock_ms IS NULL",
                params![id, now_ms(), now_s()],
            )
            .map(|_| ())
        })
    }

    /// Records the verified state of the source's copy (its digest) and the phase after it.
    pub fn verified(&self, id: i64, digest: &str) -> Result<(), JournalError> {
        self.with(|c| {
            c.execute(
                "UPDATE moves SET phase = 'verified', old_digest = ?2, updated = ?3 WHERE id = ?1",
                params![id, digest, now_s()],
            )
            .map(|_| ())
        })
    }

    /// Records that the old copy of `address` on `source` is gone (every move that left it).
    pub fn purged(&self, address: &str, source: &str) -> Result<(), JournalError> {
        self.with(|c| {
            c.execute(
                "UPDATE moves SET purged = ?3 WHERE address = ?1 AND source = ?2 AND phase = 'done'
                 AND purged IS NULL",
                params![address, source, now_s()],
            )
            .map(|_| ())
        })
    }

    /// Records that the move stopped (`phase`: failed or aborted) and why.
    pub fn stop(&self, id: i64, phase: Phase, why: &str) -> Result<(), JournalError> {
        self.with(|c| {
            c.execute(
                "UPDATE moves SET phase = ?2, error = ?3, owner = NULL, updated = ?4 WHERE id = ?1",
                params![id, phase.as_str(), why, now_s()],
            )
            .map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_move_is_recorded_step_by_step_and_one_account_has_one_open_move() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let b = j.begin_batch("move a@x --to s2").unwrap();
        let e = j.plan(b, "a@x", "s1", "s2", 10, 1000).unwrap();
        assert_eq!(e.phase, Phase::Planned);
        assert!(matches!(
            j.plan(b, "a@x", "s1", "s2", 10, 1000),
            Err(JournalError::Busy { .. })
        ));
        j.claim(e.id).unwrap();
        j.set_phase(e.id, Phase::Copying).unwrap();
        j.record_pass(e.id, "state1", Duration::from_millis(500))
            .unwrap();
        j.record_pass(e.id, "state2", Duration::from_millis(50))
            .unwrap();
        j.lock_begins(e.id).unwrap();
        let got = j.get(e.id).unwrap();
        assert_eq!(
            (got.phase, got.passes, got.sync_state.as_str()),
            (Phase::Locked, 2, "state2")
        );
        assert_eq!(got.first_pass_ms, Some(500.0));
        assert_eq!(got.rate(), Some(2000.0));
        assert_eq!(got.owner, Some(std::process::id()));
        j.lock_ends(e.id).unwrap();
        assert!(j.get(e.id).unwrap().lock_ms.is_some());
        j.set_phase(e.id, Phase::Done).unwrap();
        // Reopened: what was written is there, and the account may be moved again.
        drop(j);
        let j = Journal::open(dir.path()).unwrap();
        assert!(j.unfinished().unwrap().is_empty());
        j.plan(b, "a@x", "s2", "s1", 10, 1000).unwrap();
        assert_eq!(j.all().unwrap().len(), 2);
    }

    #[test]
    fn a_move_held_by_a_dead_process_can_be_claimed() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let b = j.begin_batch("t").unwrap();
        let e = j.plan(b, "a@x", "s1", "s2", 0, 0).unwrap();
        // PID 0 is never a process of ours.
        j.with(|c| c.execute("UPDATE moves SET owner = 0", []).map(|_| ()))
            .unwrap();
        assert_eq!(j.claim(e.id).unwrap().owner, Some(std::process::id()));
    }
}

//! The upgrade journal (`DATA_DIR/upgrades.db`): each run's plan and every server's step as a
//! persisted state machine, written before each step is taken, so that a run killed anywhere
//! continues with `upgrade resume` from the recorded phase: a server already updated is not
//! updated again, and a gate whose phase was not recorded as passed is taken again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mailfleet_core::child::is_mailfleet as alive;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// Where a server's step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepPhase {
    /// Not started.
    Pending,
    /// Its gates before passed.
    Gated,
    /// Emptied (a store), or nothing to empty.
    Drained,
    /// Updated by the package manager.
    Updated,
    /// Its gates after passed for the soak time.
    Soaked,
    /// Given back its mailboxes or its queued mail.
    Done,
    /// Stopped the run (a gate, the update).
    Failed,
}

impl StepPhase {
    const ALL: [(StepPhase, &'static str); 7] = [
        (StepPhase::Pending, "pending"),
        (StepPhase::Gated, "gated"),
        (StepPhase::Drained, "drained"),
        (StepPhase::Updated, "updated"),
        (StepPhase::Soaked, "soaked"),
        (StepPhase::Done, "done"),
        (StepPhase::Failed, "failed"),
    ];

    /// Its name in the journal.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(p, _)| *p == self)
            .map_or("pending", |(_, n)| n)
    }

    fn parse(s: &str) -> Option<StepPhase> {
        Self::ALL.iter().find(|(_, n)| *n == s).map(|(p, _)| *p)
    }
}

/// One server's step as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    /// Its place.
    pub n: usize,
    /// The server.
    pub server: String,
    /// Where it is.
    pub phase: StepPhase,
    /// When it started (Unix s).
    pub started: Option<i64>,
    /// When it ended (Unix s).
    pub ended: Option<i64>,
    /// What its commands printed (the package manager's output, the processes restarted).
    pub output: String,
    /// Why it failed.
    pub error: Option<String>,
    /// Seconds spent in each part of it (`gate_before`, `update`, `restart`, `soak_wait`, ...),
    /// added up over resumes.
    pub timings: BTreeMap<String, f64>,
}

/// One run as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// Its number.
    pub id: i64,
    /// When it was started (Unix s).
    pub created: i64,
    /// `running`, `halted`, `aborted` or `done`.
    pub state: String,
    /// Why it halted or was aborted.
    pub reason: Option<String>,
    /// Packages it updates (empty: all).
    pub packages: Vec<String>,
    /// Whether an abort was asked for (it stops after the current step).
    pub abort_requested: bool,
    /// The process running it, if one is.
    pub owner: Option<u32>,
    /// Its steps, in order.
    pub steps: Vec<StepRecord>,
}

/// The journal failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The database failed.
    #[error("upgrade journal {path}: {message}")]
    Db {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// No such run.
    #[error("no upgrade run {0}")]
    NoRun(i64),
    /// Another live process runs it.
    #[error("upgrade run {id} is being run by process {pid}")]
    Owned {
        /// The run.
        id: i64,
        /// That process.
        pid: u32,
    },
    /// A run is not over: one at a time.
    #[error("upgrade run {0} is not over: `upgrade resume` or `upgrade abort` it first")]
    Open(i64),
}

/// The journal of every upgrade run.
pub struct Journal {
    path: PathBuf,
    conn: std::sync::Mutex<Connection>,
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Journal {
    /// Opens (creating) the journal in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, JournalError> {
        let path = data_dir.join("upgrades.db");
        let db = |e: &dyn std::fmt::Display| JournalError::Db {
            path: path.clone(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(data_dir).map_err(|e| db(&e))?;
        let conn = Connection::open(&path).map_err(|e| db(&e))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(|e| db(&e))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| db(&e))?;
        // A step is taken only after its phase is on disk.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| db(&e))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS runs (
                id INTEGER PRIMARY KEY, created INTEGER NOT NULL, packages TEXT NOT NULL,
                state TEXT NOT NULL, reason TEXT, owner INTEGER,
                abort_requested INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE IF NOT EXISTS steps (
                run INTEGER NOT NULL, n INTEGER NOT NULL, server TEXT NOT NULL,
                phase TEXT NOT NULL, started INTEGER, ended INTEGER,
                output TEXT NOT NULL DEFAULT '', error TEXT, PRIMARY KEY (run, n));
             CREATE TABLE IF NOT EXISTS step_times (
                run INTEGER NOT NULL, n INTEGER NOT NULL, part TEXT NOT NULL,
                secs REAL NOT NULL, PRIMARY KEY (run, n, part));",
        )
        .map_err(|e| db(&e))?;
        Ok(Journal {
            path,
            conn: std::sync::Mutex::new(conn),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, JournalError> {
        // A panic while the lock was held leaves the connection usable: SQLite rolled back.
        let mut conn = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut conn).map_err(|e| JournalError::Db {
            path: self.path.clone(),
            message: e.to_string(),
        })
    }

    /// The newest run that is not over (running or halted), if any.
    pub fn open_run(&self) -> Result<Option<i64>, JournalError> {
        self.with(|c| {
            c.query_row(
                "SELECT id FROM runs WHERE state IN ('running', 'halted') ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// Records a new run of `servers` in order; refused while another is not over.
    pub fn begin(&self, packages: &[String], servers: &[String]) -> Result<i64, JournalError> {
        if let Some(id) = self.open_run()? {
            return Err(JournalError::Open(id));
        }
        let packages = packages.join(",");
        self.with(|c| {
            let t = c.transaction()?;
            t.execute(
                "INSERT INTO runs (created, packages, state, owner) VALUES (?1, ?2, 'running', ?3)",
                params![now_s(), packages, std::process::id()],
            )?;
            let id = t.last_insert_rowid();
            for (i, s) in servers.iter().enumerate() {
                t.execute(
                    "INSERT INTO steps (run, n, server, phase) VALUES (?1, ?2, ?3, 'pending')",
                    params![id, i as i64 + 1, s],
                )?;
            }
            t.commit()?;
            Ok(id)
        })
    }

    /// Run `id` with its steps.
    pub fn get(&self, id: i64) -> Result<RunRecord, JournalError> {
        let run = self.with(|c| {
            c.query_row(
                "SELECT id, created, packages, state, reason, owner, abort_requested FROM runs WHERE id = ?1",
                params![id],
                |r| {
                    let packages: String = r.get(2)?;
                    Ok(RunRecord {
                        id: r.get(0)?,
                        created: r.get(1)?,
                        packages: packages
                            .split(',')
                            .filter(|p| !p.is_empty())
                            .map(String::from)
                            .collect(),
                        state: r.get(3)?,
                        reason: r.get(4)?,
                        owner: r.get(5)?,
                        abort_requested: r.get::<_, i64>(6)? != 0,
                        steps: Vec::new(),
                    })
                },
            )
            .optional()
        })?;
        let mut run = run.ok_or(JournalError::NoRun(id))?;
        run.steps = self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT n, server, phase, started, ended, output, error FROM steps WHERE run = ?1 ORDER BY n",
            )?;
            let rows = stmt.query_map(params![id], |r| {
                let phase: String = r.get(2)?;
                Ok(StepRecord {
                    n: r.get::<_, i64>(0)? as usize,
                    server: r.get(1)?,
                    // An unknown phase (a newer version's) is not taken for any known one.
                    phase: StepPhase::parse(&phase).unwrap_or(StepPhase::Failed),
                    started: r.get(3)?,
                    ended: r.get(4)?,
                    output: r.get(5)?,
                    error: r.get(6)?,
                    timings: BTreeMap::new(),
                })
            })?;
            rows.collect::<Result<Vec<_>, _>>()
        })?;
        let times: Vec<(usize, String, f64)> = self.with(|c| {
            let mut stmt = c.prepare("SELECT n, part, secs FROM step_times WHERE run = ?1")?;
            let rows = stmt.query_map(params![id], |r| {
                Ok((r.get::<_, i64>(0)? as usize, r.get(1)?, r.get(2)?))
            })?;
            rows.collect::<Result<Vec<_>, _>>()
        })?;
        for (n, part, secs) in times {
            if let Some(step) = run.steps.iter_mut().find(|s| s.n == n) {
                step.timings.insert(part, secs);
            }
        }
        Ok(run)
    }

    /// The newest run, if any.
    pub fn latest(&self) -> Result<Option<i64>, JournalError> {
        self.with(|c| {
            c.query_row("SELECT max(id) FROM runs", [], |r| r.get(0))
                .optional()
                .map(Option::flatten)
        })
    }

    /// Takes run `id` for this process (unless a live one holds it) and marks it running.
    pub fn claim(&self, id: i64) -> Result<RunRecord, JournalError> {
        let run = self.get(id)?;
        if let Some(pid) = run.owner
            && pid != std::process::id()
            && alive(pid)
        {
            return Err(JournalError::Owned { id, pid });
        }
        self.with(|c| {
            c.execute(
                "UPDATE runs SET owner = ?2, state = 'running', reason = NULL WHERE id = ?1",
                params![id, std::process::id()],
            )
            .map(|_| ())
        })?;
        self.get(id)
    }

    /// Records step `n`'s new phase (and when it started or ended).
    pub fn set_phase(&self, id: i64, n: usize, phase: StepPhase) -> Result<(), JournalError> {
        let now = now_s();
        self.with(|c| {
            c.execute(
                "UPDATE steps SET phase = ?3,
                   started = coalesce(started, ?4),
                   ended = CASE WHEN ?3 IN ('done', 'failed') THEN ?4 ELSE ended END
                 WHERE run = ?1 AND n = ?2",
                params![id, n as i64, phase.as_str(), now],
            )
            .map(|_| ())
        })
    }

    /// Adds `secs` to the time step `n` spent in `part`.
    pub fn add_time(&self, id: i64, n: usize, part: &str, secs: f64) -> Result<(), JournalError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO step_times (run, n, part, secs) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (run, n, part) DO UPDATE SET secs = secs + excluded.secs",
                params![id, n as i64, part, secs],
            )
            .map(|_| ())
        })
    }

    /// Adds to step `n`'s output.
    pub fn append_output(&self, id: i64, n: usize, text: &str) -> Result<(), JournalError> {
        self.with(|c| {
            c.execute(
                "UPDATE steps SET output = output || ?3 WHERE run = ?1 AND n = ?2",
                params![id, n as i64, text],
            )
            .map(|_| ())
        })
    }

    /// Records why step `n` failed and halts the run with that reason.
    pub fn halt(&self, id: i64, n: usize, why: &str) -> Result<(), JournalError> {
        self.with(|c| {
            let t = c.transaction()?;
            t.execute(
                "UPDATE steps SET phase = CASE WHEN phase = 'pending' THEN 'pending' ELSE phase END, error = ?3 WHERE run = ?1 AND n = ?2",
                params![id, n as i64, why],
            )?;
            t.execute(
                "UPDATE runs SET state = 'halted', reason = ?2, owner = NULL WHERE id = ?1",
                params![id, why],
            )?;
            t.commit()
        })
    }

    /// Clears step `n`'s error (a resumed run tries it again).
    pub fn clear_error(&self, id: i64, n: usize) -> Result<(), JournalError> {
        self.with(|c| {
            c.execute(
                "UPDATE steps SET error = NULL WHERE run = ?1 AND n = ?2",
                params![id, n as i64],
            )
            .map(|_| ())
        })
    }

    /// Ends run `id` in `state` (`done`, `aborted`).
    pub fn finish(&self, id: i64, state: &str, reason: Option<&str>) -> Result<(), JournalError> {
        self.with(|c| {
            c.execute(
                "UPDATE runs SET state = ?2, reason = ?3, owner = NULL WHERE id = ?1",
                params![id, state, reason],
            )
            .map(|_| ())
        })
    }

    /// Asks run `id` to stop after its current step.
    pub fn request_abort(&self, id: i64) -> Result<(), JournalError> {
        self.with(|c| {
            c.execute(
                "UPDATE runs SET abort_requested = 1 WHERE id = ?1",
                params![id],
            )
            .map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_run_is_recorded_step_by_step_and_one_is_open_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let id = j
            .begin(&[], &["ldap1".to_string(), "mx1".to_string()])
            .unwrap();
        assert!(matches!(j.begin(&[], &[]), Err(JournalError::Open(i)) if i == id));
        j.set_phase(id, 1, StepPhase::Gated).unwrap();
        j.append_output(id, 1, "apt says\n").unwrap();
        j.add_time(id, 1, "update", 1.5).unwrap();
        j.add_time(id, 1, "update", 0.25).unwrap();
        j.set_phase(id, 1, StepPhase::Done).unwrap();
        j.halt(id, 2, "mx1: gate before: store1 imap CRITICAL")
            .unwrap();
        drop(j);
        let j = Journal::open(dir.path()).unwrap();
        let r = j.get(id).unwrap();
        assert_eq!(r.state, "halted");
        assert_eq!(r.steps[0].phase, StepPhase::Done);
        assert!(r.steps[0].ended.is_some() && r.steps[0].output == "apt says\n");
        assert_eq!(r.steps[0].timings["update"], 1.75);
        assert_eq!(r.steps[1].phase, StepPhase::Pending);
        assert!(r.steps[1].error.as_deref().unwrap().contains("CRITICAL"));
        assert_eq!(j.claim(id).unwrap().state, "running");
        j.finish(id, "done", None).unwrap();
        assert_eq!(j.open_run().unwrap(), None);
    }
}

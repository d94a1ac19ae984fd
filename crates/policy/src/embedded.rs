//! The embedded state: counters in memory (a request costs a map lookup, not a disk write),
//! written behind to SQLite by one thread in batches, and loaded back at start, so a restart
//! does not reset anyone's quota. For one MTA; several share theirs through Redis.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};

use async_trait::async_trait;
use rusqlite::{Connection, params};

use crate::counters::{Counters, Held, Limits, Usage};
use crate::error::PolicyError;

/// Events older than this are dropped at load and by the writer (the longest window allowed).
const KEEP_MS: u64 = 7 * 86_400_000;

enum Write {
    Add(String, u64, Usage, Option<String>),
    Refund(String, String),
    /// Forget a key's events, and tell the other processes sharing the file (origin given).
    Reset(String, String),
    Hold(Held),
    Unhold(Held),
    /// Answered once everything before it is committed.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// One counted message: when, what it added, its queue ID when known.
type Event = (u64, Usage, Option<String>);

#[derive(Default)]
struct Memory {
    events: HashMap<String, VecDeque<Event>>,
    held: Vec<Held>,
}

/// Counters in memory, persisted in SQLite.
pub struct Embedded {
    path: PathBuf,
    /// This process's mark on the reset requests it makes, so it does not apply its own.
    origin: String,
    reader: Mutex<Connection>,
    memory: Mutex<Memory>,
    writes: Mutex<Sender<Write>>,
}

fn db_err(path: &Path) -> impl Fn(rusqlite::Error) -> PolicyError + '_ {
    move |source| PolicyError::State {
        path: path.display().to_string(),
        source,
    }
}

/// Opens the database and makes its tables.
fn open_db(path: &Path) -> Result<Connection, PolicyError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(PolicyError::io(format!("creating {}", dir.display())))?;
    }
    let c = Connection::open(path).map_err(db_err(path))?;
    c.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA busy_timeout = 5000;
         CREATE TABLE IF NOT EXISTS events (key TEXT NOT NULL, ts INTEGER NOT NULL,
             messages INTEGER NOT NULL, recipients INTEGER NOT NULL, bytes INTEGER NOT NULL,
             queue_id TEXT);
         CREATE INDEX IF NOT EXISTS events_key_ts ON events (key, ts);
         CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
         CREATE TABLE IF NOT EXISTS reset_requests (key TEXT NOT NULL, origin TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS block_passwords (address TEXT PRIMARY KEY, fingerprint TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS held (queue_id TEXT PRIMARY KEY, key TEXT NOT NULL,
             ts INTEGER NOT NULL, messages INTEGER NOT NULL, recipients INTEGER NOT NULL,
             bytes INTEGER NOT NULL);",
    )
    .map_err(db_err(path))?;
    add_held_mta(&c).map_err(db_err(path))?;
    Ok(c)
}

/// The `mta` column of `held`, added to a database made before held records named their MTA.
fn add_held_mta(c: &Connection) -> rusqlite::Result<()> {
    let has = c
        .prepare("SELECT 1 FROM pragma_table_info('held') WHERE name = 'mta'")?
        .exists([])?;
    if !has {
        c.execute_batch("ALTER TABLE held ADD COLUMN mta TEXT")?;
    }
    Ok(())
}

fn load(c: &Connection, path: &Path, now_ms: u64) -> Result<Memory, PolicyError> {
    let mut m = Memory::default();
    let since = now_ms.saturating_sub(KEEP_MS) as i64;
    let mut q = c
        .prepare(
            "SELECT key, ts, messages, recipients, bytes, queue_id FROM events WHERE ts > ?1 ORDER BY ts",
        )
        .map_err(db_err(path))?;
    let rows = q
        .query_map(params![since], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)? as u64,
                Usage {
                    messages: r.get::<_, i64>(2)? as u64,
                    recipients: r.get::<_, i64>(3)? as u64,
                    bytes: r.get::<_, i64>(4)? as u64,
                },
                r.get::<_, Option<String>>(5)?,
            ))
        })
        .map_err(db_err(path))?;
    for row in rows {
        let (key, ts, usage, qid) = row.map_err(db_err(path))?;
        m.events.entry(key).or_default().push_back((ts, usage, qid));
    }
    m.held = read_held(c, path, None)?;
    Ok(m)
}

/// Held messages from the database.
fn read_held(c: &Connection, path: &Path, key: Option<&str>) -> Result<Vec<Held>, PolicyError> {
    let mut q = c
        .prepare(
            "SELECT queue_id, key, ts, messages, recipients, bytes, mta FROM held
             WHERE ?1 IS NULL OR key = ?1 ORDER BY ts, queue_id",
        )
        .map_err(db_err(path))?;
    let rows = q
        .query_map(params![key], |r| {
            Ok(Held {
                mta: r.get(6)?,
                queue_id: r.get(0)?,
                key: r.get(1)?,
                at_ms: r.get::<_, i64>(2)? as u64,
                usage: Usage {
                    messages: r.get::<_, i64>(3)? as u64,
                    recipients: r.get::<_, i64>(4)? as u64,
                    bytes: r.get::<_, i64>(5)? as u64,
                },
            })
        })
        .map_err(db_err(path))?;
    rows.collect::<Result<_, _>>().map_err(db_err(path))
}

fn apply(c: &mut Connection, batch: &[Write]) -> rusqlite::Result<()> {
    let t = c.transaction()?;
    for w in batch {
        match w {
            Write::Add(key, ts, u, qid) => {
                t.execute(
                    "INSERT INTO events VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        key,
                        *ts as i64,
                        u.messages as i64,
                        u.recipients as i64,
                        u.bytes as i64,
                        qid
                    ],
                )?;
            }
            Write::Refund(key, qid) => {
                t.execute(
                    "DELETE FROM events WHERE key = ?1 AND queue_id = ?2",
                    params![key, qid],
                )?;
            }
            Write::Reset(key, origin) => {
                t.execute("DELETE FROM events WHERE key = ?1", params![key])?;
                t.execute(
                    "INSERT INTO reset_requests VALUES (?1, ?2)",
                    params![key, origin],
                )?;
            }
            Write::Flush(_) => {}
            Write::Hold(h) => {
                t.execute(
                    "INSERT OR REPLACE INTO held (queue_id, key, ts, messages, recipients, bytes, mta)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        h.queue_id,
                        h.key,
                        h.at_ms as i64,
                        h.usage.messages as i64,
                        h.usage.recipients as i64,
                        h.usage.bytes as i64,
                        h.mta
                    ],
                )?;
            }
            Write::Unhold(h) => {
                t.execute(
                    "DELETE FROM held WHERE queue_id = ?1 AND mta IS ?2",
                    params![h.queue_id, h.mta],
                )?;
            }
        }
    }
    t.commit()
}

/// Drops events older than the longest window (done once a minute, not per batch).
fn expire(c: &Connection, now_ms: u64) -> rusqlite::Result<usize> {
    c.execute(
        "DELETE FROM events WHERE ts <= ?1",
        params![now_ms.saturating_sub(KEEP_MS) as i64],
    )
}

fn writer(mut c: Connection, path: PathBuf, rx: Receiver<Write>) {
    // Batches whatever has queued up since the last commit: one transaction per burst.
    let mut expired_ms = 0;
    while let Ok(first) = rx.recv() {
        // Let a burst gather: one commit (and one wake-up) per 20 ms at most under load. A
        // crash loses at most that much counting, never mail.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
            if batch.len() >= 65_536 {
                break;
            }
        }
        if let Err(e) = apply(&mut c, &batch) {
            tracing::error!(
                "policy state {}: {e}: {} updates not saved",
                path.display(),
                batch.len()
            );
        }
        for w in batch {
            if let Write::Flush(done) = w {
                let _ = done.send(());
            }
        }
        let now = crate::counters::now_ms();
        if now.saturating_sub(expired_ms) >= 60_000 {
            expired_ms = now;
            if let Err(e) = expire(&c, now) {
                tracing::error!("policy state {}: expiring old events: {e}", path.display());
            }
        }
    }
}

impl Embedded {
    /// Opens (or creates) the state file and loads what is still in a window.
    pub fn open(path: &Path) -> Result<Self, PolicyError> {
        let c = open_db(path)?;
        let memory = load(&c, path, crate::counters::now_ms())?;
        let reader = open_db(path)?;
        let (tx, rx) = channel();
        let owned = path.to_path_buf();
        std::thread::Builder::new()
            .name("policy-state".into())
            .spawn(move || writer(c, owned, rx))
            .map_err(PolicyError::io("starting the state writer"))?;
        let origin = format!("{}.{}", std::process::id(), crate::counters::now_ms());
        Ok(Embedded {
            path: path.to_path_buf(),
            origin,
            reader: Mutex::new(reader),
            memory: Mutex::new(memory),
            writes: Mutex::new(tx),
        })
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        // Every update is a single push or removal: a panic elsewhere cannot leave it half-done.
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self, w: Write) {
        let tx = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        if tx.send(w).is_err() {
            tracing::error!("policy state writer is gone: an update was not saved");
        }
    }
}

fn window_usage(events: Option<&mut VecDeque<Event>>, now_ms: u64, window_ms: u64) -> Usage {
    let Some(events) = events else {
        return Usage::default();
    };
    let since = now_ms.saturating_sub(window_ms);
    // Events arrive in time order; what fell out of even the longest window goes.
    while events
        .front()
        .is_some_and(|(ts, _, _)| *ts <= now_ms.saturating_sub(KEEP_MS))
    {
        events.pop_front();
    }
    events
        .iter()
        .rev()
        .take_while(|(ts, _, _)| *ts > since)
        .fold(Usage::default(), |a, (_, u, _)| a.plus(*u))
}

#[async_trait]
impl Counters for Embedded {
    async fn try_add_tagged(
        &self,
        key: &str,
        now_ms: u64,
        window_ms: u64,
        add: Usage,
        limits: Limits,
        queue_id: Option<&str>,
    ) -> Result<(bool, Usage), PolicyError> {
        let mut m = self.memory();
        let before = window_usage(m.events.get_mut(key), now_ms, window_ms);
        if limits.exceeded(before.plus(add)).is_some() {
            return Ok((false, before));
        }
        let qid = queue_id.map(str::to_string);
        m.events
            .entry(key.to_string())
            .or_default()
            .push_back((now_ms, add, qid.clone()));
        drop(m);
        self.write(Write::Add(key.to_string(), now_ms, add, qid));
        Ok((true, before))
    }

    async fn refund(&self, key: &str, queue_id: &str) -> Result<(), PolicyError> {
        if let Some(events) = self.memory().events.get_mut(key) {
            events.retain(|(_, _, q)| q.as_deref() != Some(queue_id));
        }
        self.write(Write::Refund(key.to_string(), queue_id.to_string()));
        Ok(())
    }

    async fn usage(&self, key: &str, now_ms: u64, window_ms: u64) -> Result<Usage, PolicyError> {
        Ok(window_usage(
            self.memory().events.get_mut(key),
            now_ms,
            window_ms,
        ))
    }

    async fn reset(&self, key: &str) -> Result<(), PolicyError> {
        self.memory().events.remove(key);
        self.write(Write::Reset(key.to_string(), self.origin.clone()));
        Ok(())
    }

    async fn flush(&self) -> Result<(), PolicyError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.write(Write::Flush(tx));
        rx.await.map_err(|_| {
            PolicyError::io(format!("policy state {}", self.path.display()))(std::io::Error::other(
                "the state writer is gone",
            ))
        })
    }

    async fn hold(&self, held: &Held) -> Result<(), PolicyError> {
        let mut m = self.memory();
        m.held
            .retain(|h| (&h.mta, &h.queue_id) != (&held.mta, &held.queue_id));
        m.held.push(held.clone());
        drop(m);
        self.write(Write::Hold(held.clone()));
        Ok(())
    }

    async fn held(&self, key: Option<&str>) -> Result<Vec<Held>, PolicyError> {
        let mut out: Vec<Held> = self
            .memory()
            .held
            .iter()
            .filter(|h| key.is_none_or(|k| h.key == k))
            .cloned()
            .collect();
        out.sort_by(|a, b| a.at_ms.cmp(&b.at_ms).then(a.queue_id.cmp(&b.queue_id)));
        Ok(out)
    }

    async fn unhold(&self, held: &Held) -> Result<(), PolicyError> {
        self.memory()
            .held
            .retain(|h| (&h.mta, &h.queue_id) != (&held.mta, &held.queue_id));
        self.write(Write::Unhold(held.clone()));
        Ok(())
    }

    async fn block_fingerprint(&self, address: &str) -> Result<Option<String>, PolicyError> {
        let c = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let mut q = c
            .prepare("SELECT fingerprint FROM block_passwords WHERE address = ?1")
            .map_err(db_err(&self.path))?;
        let mut rows = q
            .query_map(params![address], |r| r.get::<_, String>(0))
            .map_err(db_err(&self.path))?;
        rows.next().transpose().map_err(db_err(&self.path))
    }

    async fn set_block_fingerprint(
        &self,
        address: &str,
        fingerprint: Option<&str>,
    ) -> Result<(), PolicyError> {
        let c = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        match fingerprint {
            Some(f) => c.execute(
                "INSERT OR REPLACE INTO block_passwords VALUES (?1, ?2)",
                params![address, f],
            ),
            None => c.execute(
                "DELETE FROM block_passwords WHERE address = ?1",
                params![address],
            ),
        }
        .map(|_| ())
        .map_err(db_err(&self.path))
    }

    async fn poll_requests(&self) -> Result<(), PolicyError> {
        let requests: Vec<(String, String)> = {
            let c = self.reader.lock().unwrap_or_else(|p| p.into_inner());
            let mut q = c
                .prepare("DELETE FROM reset_requests RETURNING key, origin")
                .map_err(db_err(&self.path))?;
            let rows = q
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(db_err(&self.path))?;
            rows.collect::<Result<_, _>>().map_err(db_err(&self.path))?
        };
        for (key, origin) in requests {
            // The requester deleted the stored events already: only memory is left.
            if origin != self.origin {
                tracing::info!("usage of {key} reset on request");
                self.memory().events.remove(&key);
            }
        }
        Ok(())
    }

    async fn all_usage(
        &self,
        now_ms: u64,
        window_ms: u64,
    ) -> Result<Vec<(String, Usage)>, PolicyError> {
        let mut m = self.memory();
        let keys: Vec<String> = m.events.keys().cloned().collect();
        let mut out: Vec<(String, Usage)> = keys
            .into_iter()
            .map(|k| {
                let u = window_usage(m.events.get_mut(&k), now_ms, window_ms);
                (k, u)
            })
            .filter(|(_, u)| u.messages > 0)
            .collect();
        out.sort_by(|a, b| b.1.messages.cmp(&a.1.messages).then(a.0.cmp(&b.0)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(messages: u64) -> Limits {
        Limits {
            messages: Some(messages),
            ..Limits::default()
        }
    }

    #[tokio::test]
    async fn the_window_slides_and_a_restart_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.db");
        let c = Embedded::open(&path).unwrap();
        let t0 = crate::counters::now_ms();
        let w = 60_000;
        for i in 0..5 {
            let (ok, _) = c
                .try_add("a@x", t0 + i, w, Usage::message(10, 100), limits(5))
                .await
                .unwrap();
            assert!(ok, "message {i} within quota");
        }
        let (ok, before) = c
            .try_add("a@x", t0 + 10, w, Usage::message(1, 1), limits(5))
            .await
            .unwrap();
        assert!(!ok);
        assert_eq!(
            before,
            Usage {
                messages: 5,
                recipients: 50,
                bytes: 500
            }
        );
        assert!(
            c.try_add("b@x", t0, w, Usage::message(1, 1), limits(5))
                .await
                .unwrap()
                .0
        );
        // After the window, room again.
        assert!(
            c.try_add("a@x", t0 + w + 5, w, Usage::message(1, 1), limits(5))
                .await
                .unwrap()
                .0
        );
        c.hold(&Held {
            mta: Some("mx1".into()),
            queue_id: "Q1".into(),
            key: "a@x".into(),
            at_ms: t0,
            usage: Usage::message(1, 5),
        })
        .await
        .unwrap();
        drop(c);
        // The writer commits in the background: wait for it through a new reader.
        let mut reopened = None;
        for _ in 0..200 {
            let r = Embedded::open(&path).unwrap();
            // At t0 + w + 5 only the message sent then is in the window.
            let a = r.usage("a@x", t0 + w + 5, w).await.unwrap().messages;
            let b = r.usage("b@x", t0 + 20, w).await.unwrap().messages;
            if (a, b) == (1, 1) && r.held(None).await.unwrap().len() == 1 {
                reopened = Some(r);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let r = reopened.expect("state survives a restart");
        r.reset("a@x").await.unwrap();
        assert_eq!(
            r.usage("a@x", t0 + w + 5, w).await.unwrap(),
            Usage::default()
        );
        r.unhold(&r.held(None).await.unwrap()[0]).await.unwrap();
        assert!(r.held(Some("a@x")).await.unwrap().is_empty());
    }
}

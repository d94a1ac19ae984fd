//! The embedded directory: a SQLite file in the data directory.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Directory, DirectoryError, Filter};
use crate::{Account, Address, SendBlock};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS accounts (
    address       TEXT PRIMARY KEY,
    domain        TEXT NOT NULL,
    server        TEXT NOT NULL,
    password_hash TEXT,
    locked        INTEGER NOT NULL DEFAULT 0,
    block_reason  TEXT,
    blocked_at    TEXT
);
CREATE INDEX IF NOT EXISTS accounts_domain ON accounts(domain);
CREATE INDEX IF NOT EXISTS accounts_server ON accounts(server);
";

const COLUMNS: &str = "address, server, password_hash, locked, block_reason, blocked_at";

/// Accounts in a SQLite database; several mailfleet processes may share the file.
pub struct EmbeddedDirectory {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl EmbeddedDirectory {
    /// Opens (creating if needed) the database at `path`.
    pub async fn open(path: &Path) -> Result<Self, DirectoryError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| DirectoryError::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let p = path.to_path_buf();
        let sql = |source| DirectoryError::Sqlite {
            path: p.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        conn.execute_batch(SCHEMA).map_err(sql)?;
        Ok(EmbeddedDirectory {
            path: path.to_path_buf(),
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs a closure on the connection off the async threads: SQLite calls block.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, DirectoryError> + Send + 'static,
    ) -> Result<T, DirectoryError> {
        let conn = Arc::clone(&self.conn);
        let path = self.path.display().to_string();
        tokio::task::spawn_blocking(move || {
            // A poisoned lock means another call panicked mid-statement; SQLite rolled
            // that statement back, so the connection itself is still sound.
            let mut guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| DirectoryError::Io {
            path,
            source: std::io::Error::other(e.to_string()),
        })?
    }

    fn sql_err(&self) -> impl Fn(rusqlite::Error) -> DirectoryError + Send + Clone + 'static {
        let path = self.path.display().to_string();
        move |source| DirectoryError::Sqlite {
            path: path.clone(),
            source,
        }
    }

    /// Runs an UPDATE touching one account; zero rows changed means no such account.
    async fn update(
        &self,
        address: &Address,
        sql: &'static str,
        values: Vec<Option<String>>,
    ) -> Result<(), DirectoryError> {
        let err = self.sql_err();
        let a = address.clone();
        self.with(move |c| {
            let all = std::iter::once(Some(a.to_string())).chain(values);
            let n = c
                .execute(sql, rusqlite::params_from_iter(all))
                .map_err(err)?;
            if n == 0 {
                return Err(DirectoryError::NotFound(a));
            }
            Ok(())
        })
        .await
    }
}

fn row_to_account(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Account, DirectoryError>> {
    let address: String = row.get(0)?;
    let server: String = row.get(1)?;
    let password_hash: Option<String> = row.get(2)?;
    let locked: bool = row.get(3)?;
    let reason: Option<String> = row.get(4)?;
    let at: Option<String> = row.get(5)?;
    Ok((|| {
        let corrupt = |message: String| DirectoryError::Corrupt {
            entry: address.clone(),
            message,
        };
        let parsed = Address::parse(&address).map_err(|e| corrupt(e.to_string()))?;
        let send_block = match (reason, at) {
            (Some(reason), Some(at)) => Some(SendBlock {
                reason,
                since: DateTime::parse_from_rfc3339(&at)
                    .map_err(|e| corrupt(format!("blocked_at {at:?}: {e}")))?
                    .with_timezone(&Utc),
            }),
            _ => None,
        };
        Ok(Account {
            address: parsed,
            server,
            password_hash,
            locked,
            send_block,
            password_changed: None,
        })
    })())
}

#[async_trait]
impl Directory for EmbeddedDirectory {
    async fn list(&self, filter: &Filter) -> Result<Vec<Account>, DirectoryError> {
        let err = self.sql_err();
        let f = filter.clone();
        self.with(move |c| {
            let sql = format!(
                "SELECT {COLUMNS} FROM accounts WHERE (?1 IS NULL OR domain = ?1) \
                 AND (?2 IS NULL OR server = ?2) AND (?3 = 0 OR locked = 1) ORDER BY address"
            );
            let mut stmt = c.prepare(&sql).map_err(err.clone())?;
            let rows = stmt
                .query_map(params![f.domain, f.server, f.locked], row_to_account)
                .map_err(err.clone())?;
            let mut out = Vec::new();
            for r in rows {
                out.push(r.map_err(err.clone())??);
            }
            Ok(out)
        })
        .await
    }

    async fn get(&self, address: &Address) -> Result<Option<Account>, DirectoryError> {
        let err = self.sql_err();
        let a = address.clone();
        self.with(move |c| {
            let sql = format!("SELECT {COLUMNS} FROM accounts WHERE address = ?1");
            c.query_row(&sql, params![a.as_str()], row_to_account)
                .optional()
                .map_err(err)?
                .transpose()
        })
        .await
    }

    async fn add(&self, accounts: &[Account]) -> Result<(), DirectoryError> {
        let err = self.sql_err();
        let accounts = accounts.to_vec();
        self.with(move |c| {
            // One transaction: an import with one duplicate adds nothing.
            let tx = c.transaction().map_err(err.clone())?;
            for a in &accounts {
                let exists: bool = tx
                    .query_row(
                        "SELECT 1 FROM accounts WHERE address = ?1",
                        params![a.address.as_str()],
                        |_| Ok(true),
                    )
                    .optional()
                    .map_err(err.clone())?
                    .unwrap_or(false);
                if exists {
                    return Err(DirectoryError::Duplicate(a.address.clone()));
                }
                let (reason, at) = match &a.send_block {
                    Some(b) => (Some(b.reason.clone()), Some(b.since.to_rfc3339())),
                    None => (None, None),
                };
                tx.execute(
                    "INSERT INTO accounts (address, domain, server, password_hash, locked, \
                     block_reason, blocked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        a.address.as_str(),
                        a.address.domain(),
                        a.server,
                        a.password_hash,
                        a.locked,
                        reason,
                        at
                    ],
                )
                .map_err(err.clone())?;
            }
            tx.commit().map_err(err)
        })
        .await
    }

    async fn remove(&self, address: &Address) -> Result<(), DirectoryError> {
        self.update(address, "DELETE FROM accounts WHERE address = ?1", vec![])
            .await
    }

    async fn set_server(&self, address: &Address, server: &str) -> Result<(), DirectoryError> {
        self.update(
            address,
            "UPDATE accounts SET server = ?2 WHERE address = ?1",
            vec![Some(server.to_string())],
        )
        .await
    }

    async fn switch_server(
        &self,
        address: &Address,
        from: &str,
        to: &str,
    ) -> Result<(), DirectoryError> {
        let err = self.sql_err();
        let (a, from, to) = (address.clone(), from.to_string(), to.to_string());
        self.with(move |c| {
            let n = c
                .execute(
                    "UPDATE accounts SET server = ?3 WHERE address = ?1 AND server = ?2",
                    rusqlite::params![a.to_string(), from, to],
                )
                .map_err(&err)?;
            if n == 1 {
                return Ok(());
            }
            let exists: bool = c
                .query_row(
                    "SELECT EXISTS(SELECT 1 FROM accounts WHERE address = ?1)",
                    [a.to_string()],
                    |r| r.get(0),
                )
                .map_err(&err)?;
            Err(if exists {
                DirectoryError::NotOn {
                    address: a,
                    expected: from,
                }
            } else {
                DirectoryError::NotFound(a)
            })
        })
        .await
    }

    async fn set_locked(&self, address: &Address, locked: bool) -> Result<(), DirectoryError> {
        self.update(
            address,
            "UPDATE accounts SET locked = (?2 = '1') WHERE address = ?1",
            vec![Some(if locked { "1" } else { "0" }.to_string())],
        )
        .await
    }

    async fn set_send_block(
        &self,
        address: &Address,
        block: Option<&SendBlock>,
    ) -> Result<(), DirectoryError> {
        let value = match block {
            Some(b) => vec![Some(b.reason.clone()), Some(b.since.to_rfc3339())],
            None => vec![None, None],
        };
        self.update(
            address,
            "UPDATE accounts SET block_reason = ?2, blocked_at = ?3 WHERE address = ?1",
            value,
        )
        .await
    }

    async fn set_password_hash(
        &self,
        address: &Address,
        hash: Option<&str>,
    ) -> Result<(), DirectoryError> {
        self.update(
            address,
            "UPDATE accounts SET password_hash = ?2 WHERE address = ?1",
            vec![hash.map(str::to_string)],
        )
        .await
    }
}

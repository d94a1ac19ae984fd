//! `upgrade notify`: every account of a store the plan updates gets its store's window (the
//! date and times in the windows' time zone, the expected downtime, and that mail sent to it
//! meanwhile waits and is not lost), and a reminder once the window is less than a day away,
//! from the admin's templates (built-in ones otherwise), through the fleet's MTA. Each mail is
//! recorded (`DATA_DIR/upgrades.db`), so running it again (from cron, say hourly) sends what
//! is due and nothing twice; a window that moves is a new window, announced again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mailfleet_core::config::Drain;
use mailfleet_core::directory::Filter;
use mailfleet_core::{AccountBook, Config};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::order::Rank;

/// The notice when `[upgrade] user_notice` names none.
const NOTICE: &str = "Subject: Maintenance of your mailbox server on {date}

Hello {address},

your mailbox server ({store}) will be updated on {date} between {time} and {until} ({timezone}).
You may not be able to log in for {downtime}. Mail sent to you meanwhile waits on our mail
servers and is delivered to you afterwards: nothing is lost.
";

/// The reminder when `[upgrade] user_reminder` names none.
const REMINDER: &str = "Subject: Reminder: maintenance of your mailbox server on {date}

Hello {address},

a reminder: your mailbox server ({store}) will be updated on {date} between {time} and {until}
({timezone}). You may not be able to log in for {downtime}. Mail sent to you meanwhile waits on
our mail servers and is delivered to you afterwards: nothing is lost.
";

/// Which mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The first notice of a window.
    Notice,
    /// The reminder the day before.
    Reminder,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Notice => "notice",
            Kind::Reminder => "reminder",
        }
    }
}

/// How long before its window a reminder goes out.
pub const REMIND_BEFORE: chrono::Duration = chrono::Duration::hours(24);

/// What is due for one account at `now` for a window starting at `start`, given when its
/// notice went out (if it did) and whether its reminder did: the notice first; the reminder
/// once the window is less than a day away, unless the notice itself went out that late.
pub fn due(
    now: DateTime<Utc>,
    start: DateTime<Utc>,
    notice_sent: Option<DateTime<Utc>>,
    reminded: bool,
) -> Option<Kind> {
    if now >= start {
        return None;
    }
    match notice_sent {
        None => Some(Kind::Notice),
        Some(at) if !reminded && now >= start - REMIND_BEFORE && at < start - REMIND_BEFORE => {
            Some(Kind::Reminder)
        }
        Some(_) => None,
    }
}

/// One store's window.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// The store.
    pub store: String,
    /// When its update starts at the earliest.
    pub start: DateTime<Utc>,
    /// When it is expected to end.
    pub end: DateTime<Utc>,
    /// What its users may notice.
    pub downtime: String,
}

/// One mail sent, or that could not be.
#[derive(Debug, Clone, Serialize)]
pub struct Sent {
    /// The account.
    pub address: String,
    /// Its store.
    pub store: String,
    /// Which mail.
    pub kind: Kind,
    /// Its window's start.
    pub start: DateTime<Utc>,
    /// Why it could not be sent.
    pub error: Option<String>,
}

/// What `upgrade notify` did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Each store's window.
    pub windows: Vec<Window>,
    /// Each mail, sent or not.
    pub mails: Vec<Sent>,
}

impl Report {
    /// Mails that could not be sent.
    pub fn failed(&self) -> usize {
        self.mails.iter().filter(|m| m.error.is_some()).count()
    }
}

/// `upgrade notify` failed before sending.
#[derive(Debug, thiserror::Error)]
pub enum NoticeError {
    /// The plan could not be made.
    #[error(transparent)]
    Plan(#[from] crate::PlanError),
    /// The directory failed.
    #[error("directory: {0}")]
    Directory(String),
    /// A template could not be read.
    #[error("{path}: {message}")]
    Template {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The record of sent mails failed.
    #[error("upgrade notices {path}: {message}")]
    Db {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// The windows of the stores in `plan`.
pub fn windows(config: &Config, plan: &crate::Plan) -> Vec<Window> {
    let estimate = config.upgrade.estimate;
    plan.steps
        .iter()
        .filter(|s| s.rank == Rank::Store)
        .map(|s| {
            let queued = config
                .fleet
                .server(&s.server)
                .and_then(|srv| srv.drain)
                .unwrap_or(config.upgrade.drain)
                == Drain::Queue;
            Window {
                store: s.server.clone(),
                start: s.start,
                end: s.start + chrono::Duration::from_std(estimate).unwrap_or_default(),
                downtime: if queued {
                    format!("up to {}", crate::plan::mins(estimate))
                } else {
                    "a few seconds, while your mailbox is moved to another server and back".into()
                },
            }
        })
        .collect()
}

struct Record {
    db: Connection,
    path: PathBuf,
}

impl Record {
    fn open(data_dir: &Path) -> Result<Record, NoticeError> {
        let path = data_dir.join("upgrades.db");
        let err = |e: rusqlite::Error| NoticeError::Db {
            path: path.clone(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(data_dir).map_err(|e| NoticeError::Db {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let db = Connection::open(&path).map_err(err)?;
        db.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS notices (
                address TEXT NOT NULL, store TEXT NOT NULL, window_start INTEGER NOT NULL,
                kind TEXT NOT NULL, sent_at INTEGER NOT NULL,
                PRIMARY KEY (address, window_start, kind))",
        )
        .map_err(err)?;
        Ok(Record { db, path })
    }

    fn err(&self, e: rusqlite::Error) -> NoticeError {
        NoticeError::Db {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    fn sent(&self, address: &str, start: i64, kind: Kind) -> Result<Option<i64>, NoticeError> {
        self.db
            .query_row(
                "SELECT sent_at FROM notices WHERE address = ?1 AND window_start = ?2 AND kind = ?3",
                params![address, start, kind.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    fn record(
        &self,
        address: &str,
        store: &str,
        start: i64,
        kind: Kind,
        at: i64,
    ) -> Result<(), NoticeError> {
        self.db
            .execute(
                "INSERT OR REPLACE INTO notices VALUES (?1, ?2, ?3, ?4, ?5)",
                params![address, store, start, kind.as_str(), at],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }
}

fn template(path: &Option<PathBuf>, built_in: &str) -> Result<String, NoticeError> {
    match path {
        None => Ok(built_in.to_string()),
        Some(p) => std::fs::read_to_string(p).map_err(|e| NoticeError::Template {
            path: p.clone(),
            message: e.to_string(),
        }),
    }
}

/// The mail for `address` about `w`, from `template`: (subject, body).
pub fn mail(template: &str, address: &str, w: &Window, tz: chrono_tz::Tz) -> (String, String) {
    let (start, end) = (w.start.with_timezone(&tz), w.end.with_timezone(&tz));
    let date = start.format("%A, %Y-%m-%d").to_string();
    let time = start.format("%H:%M").to_string();
    let until = if end.date_naive() == start.date_naive() {
        end.format("%H:%M").to_string()
    } else {
        end.format("%A %H:%M").to_string()
    };
    mailfleet_notify::template::fill(
        template,
        &[
            ("address", address),
            ("store", &w.store),
            ("date", &date),
            ("time", &time),
            ("until", &until),
            ("downtime", &w.downtime),
            ("timezone", tz.name()),
        ],
        "Maintenance of your mailbox server",
    )
}

/// Sends what is due at `now` to the accounts of the stores among `servers` (empty: all)
/// that the plan updates. An account's mail that cannot be sent is reported and tried again
/// on the next call; the others still go.
pub async fn notify(
    config: &Config,
    servers: Vec<String>,
    now: DateTime<Utc>,
) -> Result<Report, NoticeError> {
    let plan = crate::command::plan(config, servers, Vec::new(), now).await?;
    let windows = windows(config, &plan);
    let notice = template(&config.upgrade.user_notice, NOTICE)?;
    let reminder = match &config.upgrade.user_reminder {
        Some(_) => template(&config.upgrade.user_reminder, REMINDER)?,
        None if config.upgrade.user_notice.is_some() => notice.clone(),
        None => REMINDER.to_string(),
    };
    let record = Record::open(&config.data_dir)?;
    let book = AccountBook::open(config)
        .await
        .map_err(|e| NoticeError::Directory(e.to_string()))?;
    let notifier = mailfleet_notify::Notifier::new(config);
    let tz = config.upgrade.timezone;
    let mut mails = Vec::new();
    for w in &windows {
        let probe = config
            .fleet
            .server(&w.store)
            .and_then(|s| s.probe_account.as_ref())
            .map(ToString::to_string);
        let accounts = book
            .list(&Filter {
                domain: None,
                server: Some(w.store.clone()),
                locked: false,
            })
            .await
            .map_err(|e| NoticeError::Directory(e.to_string()))?;
        let start = w.start.timestamp();
        for a in accounts {
            let address = a.address.to_string();
            if Some(&address) == probe.as_ref() {
                continue;
            }
            let notice_sent = record
                .sent(&address, start, Kind::Notice)?
                .and_then(|t| DateTime::from_timestamp(t, 0));
            let reminded = record.sent(&address, start, Kind::Reminder)?.is_some();
            let Some(kind) = due(now, w.start, notice_sent, reminded) else {
                continue;
            };
            let text = match kind {
                Kind::Notice => &notice,
                Kind::Reminder => &reminder,
            };
            let (subject, body) = mail(text, &address, w, tz);
            let error = notifier.mail(&address, &subject, &body).await.err();
            if error.is_none() {
                record.record(&address, &w.store, start, kind, now.timestamp())?;
            }
            mails.push(Sent {
                address,
                store: w.store.clone(),
                kind,
                start: w.start,
                error,
            });
        }
    }
    Ok(Report { windows, mails })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + h * 3600, 0).unwrap()
    }

    #[test]
    fn the_notice_first_then_a_reminder_the_day_before() {
        let start = at(72);
        assert_eq!(due(at(0), start, None, false), Some(Kind::Notice));
        assert_eq!(due(at(1), start, Some(at(0)), false), None);
        assert_eq!(due(at(49), start, Some(at(0)), false), Some(Kind::Reminder));
        assert_eq!(due(at(50), start, Some(at(0)), true), None);
        // A notice sent within the last day is reminder enough.
        assert_eq!(due(at(60), start, None, false), Some(Kind::Notice));
        assert_eq!(due(at(61), start, Some(at(60)), false), None);
        // Too late for anything.
        assert_eq!(due(at(72), start, None, false), None);
    }

    #[test]
    fn the_window_in_the_time_zone() {
        let w = Window {
            store: "store1".into(),
            start: DateTime::parse_from_rfc3339("2026-12-05T01:30:00Z")
                .unwrap()
                .with_timezone(&Utc),
            end: DateTime::parse_from_rfc3339("2026-12-05T01:45:00Z")
                .unwrap()
                .with_timezone(&Utc),
            downtime: "up to 15 min".into(),
        };
        let (s, b) = mail(NOTICE, "a@example.com", &w, chrono_tz::Europe::Berlin);
        assert_eq!(
            s,
            "Maintenance of your mailbox server on Saturday, 2026-12-05"
        );
        assert!(b.contains("between 02:30 and 02:45 (Europe/Berlin)"), "{b}");
        assert!(b.contains("Hello a@example.com"), "{b}");
    }
}

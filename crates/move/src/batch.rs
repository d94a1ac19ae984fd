//! A batch of moves: planned together, run several at once up to a limit, one failing
//! without stopping the others, the whole batch stopping when more than a set share fail;
//! `resume` runs every move a killed batch left unfinished.

use futures::StreamExt;

use crate::error::MoveError;
use crate::journal::{Entry, Phase};
use crate::sequence::{Moved, Mover};

/// How a batch runs.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Accounts moved at once.
    pub parallel: usize,
    /// The batch stops starting moves once more than this share of it failed (0..=1).
    pub max_failed_share: f64,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            parallel: 2,
            max_failed_share: 0.2,
        }
    }
}

/// One move of a batch, as it ended.
#[derive(Debug, serde::Serialize)]
pub struct Ended {
    /// The journal's number for it.
    pub id: i64,
    /// The account.
    pub address: String,
    /// What it did, when it worked.
    pub moved: Option<Moved>,
    /// Why it did not.
    pub error: Option<String>,
    /// Whether the account is still locked (an unlock failed too): it needs `move resume`
    /// or `move abort`.
    pub still_locked: bool,
}

/// What a batch did.
#[derive(Debug, serde::Serialize)]
pub struct BatchReport {
    /// Each move, in the batch's order.
    pub moves: Vec<Ended>,
    /// Why the batch stopped before its end, if it did.
    pub stopped: Option<String>,
}

impl BatchReport {
    /// Moves that failed.
    pub fn failed(&self) -> usize {
        self.moves.iter().filter(|m| m.error.is_some()).count()
    }

    /// `ADDRESS: why` of each move that failed.
    pub fn errors(&self) -> Vec<String> {
        self.moves
            .iter()
            .filter_map(|m| m.error.as_ref().map(|e| format!("{}: {e}", m.address)))
            .collect()
    }
}

/// Why a batch starts no further move, as its caller says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Halt {
    /// An admin stopped it: the moves not started are recorded aborted.
    Aborted(String),
    /// Its process stops (a daemon's shutdown): the moves not started stay open for
    /// `move resume`.
    Paused(String),
}

/// Something to tell the admin while a batch runs (a progress bar, a log), and that may
/// stop it between moves.
pub trait Progress: Sync {
    /// A move starts (or continues).
    fn started(&self, entry: &Entry);
    /// A move ended.
    fn ended(&self, ended: &Ended);
    /// Asked before each move starts: `Some` starts no further move (those in flight
    /// finish).
    fn halt(&self) -> Option<Halt> {
        None
    }
}

/// Tells nobody.
pub struct Quiet;

impl Progress for Quiet {
    fn started(&self, _: &Entry) {}
    fn ended(&self, _: &Ended) {}
}

/// Runs the moves `entries` (recorded, in any phase not over) as one batch.
pub async fn run(
    mover: &Mover<'_>,
    entries: Vec<Entry>,
    opts: &BatchOptions,
    progress: &dyn Progress,
) -> BatchReport {
    let total = entries.len();
    let failed = std::sync::atomic::AtomicUsize::new(0);
    let limit = (opts.max_failed_share.clamp(0.0, 1.0) * total as f64).floor() as usize;
    let stop = std::sync::Mutex::new(None::<String>);
    let one = |entry: Entry| {
        let failed = &failed;
        let stop = &stop;
        async move {
            if let Some(Halt::Paused(why)) = progress.halt() {
                // Left as recorded: `move resume` takes it from its phase.
                return Ended {
                    id: entry.id,
                    address: entry.address,
                    moved: None,
                    error: Some(format!(
                        "not started: {why}; `mailfleet move resume` continues it"
                    )),
                    still_locked: false,
                };
            }
            if let Some(Halt::Aborted(why)) = progress.halt() {
                stop.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get_or_insert(why);
            }
            let stopped = stop
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            if let Some(why) = stopped {
                // Not started: recorded as aborted with the batch's reason, never half-run.
                let error = match mover.journal.stop(entry.id, Phase::Aborted, &why) {
                    Ok(()) => format!("not started: {why}"),
                    Err(e) => format!("not started: {why}; {e}"),
                };
                return Ended {
                    id: entry.id,
                    address: entry.address,
                    moved: None,
                    error: Some(error),
                    still_locked: false,
                };
            }
            progress.started(&entry);
            let r = mover.drive(entry.id).await;
            let ended = match r {
                Ok(m) => Ended {
                    id: entry.id,
                    address: entry.address,
                    moved: Some(m),
                    error: None,
                    still_locked: false,
                },
                Err(e) => {
                    let n = failed.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    if n > limit {
                        let mut s = stop
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        s.get_or_insert_with(|| {
                            format!(
                                "{n} of {total} moves failed, more than the {:.0}% allowed (max_failed_share)",
                                opts.max_failed_share * 100.0
                            )
                        });
                    }
                    Ended {
                        id: entry.id,
                        address: entry.address,
                        moved: None,
                        still_locked: matches!(e, MoveError::StillLocked { .. }),
                        error: Some(e.to_string()),
                    }
                }
            };
            progress.ended(&ended);
            ended
        }
    };
    let mut moves: Vec<Ended> = futures::stream::iter(entries.into_iter().map(one))
        .buffer_unordered(opts.parallel.max(1))
        .collect()
        .await;
    moves.sort_by_key(|m| m.id);
    let stopped = stop
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .or_else(|| match progress.halt() {
            Some(Halt::Paused(why)) if moves.iter().any(|m| m.moved.is_none()) => Some(why),
            _ => None,
        });
    BatchReport { moves, stopped }
}

//! The `mailfleet move` commands as library calls: start a batch (or only plan it), resume
//! what a killed batch left, abort moves before their switch, show every move.

use std::time::Duration;

use mailfleet_core::{AccountBook, Config};
use mailfleet_remote::Reach;

use crate::batch::{self, BatchOptions, BatchReport, Progress};
use crate::error::MoveError;
use crate::journal::{Entry, Journal, Phase};
use crate::plan::{Plan, Request};
use crate::sequence::{MoveOptions, Mover};

/// Settings the command line may change for one run.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--lock-budget`.
    pub lock_budget: Option<Duration>,
    /// `--parallel`.
    pub parallel: Option<usize>,
}

/// What `move ...` did.
#[derive(Debug, serde::Serialize)]
pub struct Started {
    /// What was planned.
    pub plan: Plan,
    /// What ran; `None` with `--plan`, or when the plan was refused.
    pub report: Option<BatchReport>,
    /// Notices that could not be sent (the moves went ahead).
    pub notices: Vec<String>,
}

fn options(config: &Config, o: &Overrides) -> (MoveOptions, BatchOptions) {
    let m = &config.moves;
    (
        MoveOptions {
            lock_budget: o.lock_budget.unwrap_or(m.lock_budget),
            max_passes: m.max_passes,
            max_load: m.max_load,
            ..MoveOptions::default()
        },
        BatchOptions {
            parallel: o.parallel.unwrap_or(m.parallel),
            max_failed_share: m.max_failed_share,
        },
    )
}

/// Plans `request` and, unless `only_plan`, runs it as one batch. A plan in which an account
/// cannot be placed runs nothing: the [`Started`] then has no report, its plan's `refused`
/// says why.
pub async fn start(
    config: &Config,
    request: &Request,
    command: &str,
    only_plan: bool,
    overrides: &Overrides,
    progress: &dyn Progress,
) -> Result<Started, MoveError> {
    if let Some(problem) = request.problem() {
        return Err(MoveError::Request(problem));
    }
    let book = AccountBook::open(config)
        .await
        .map_err(|e| MoveError::Directory(e.to_string()))?;
    let reach = Reach::new();
    let (mopts, bopts) = options(config, overrides);
    let upgrading = mailfleet_core::upgrade_marks::UpgradeMarks::open(&config.data_dir)
        .and_then(|m| m.list())?
        .into_iter()
        .map(|m| (m.server, m.reason))
        .collect();
    let plan = crate::plan::plan(
        &book,
        &reach,
        request,
        config.moves.keep_free_pct,
        &upgrading,
        mopts.deadline,
    )
    .await?;
    if only_plan || !plan.refused.is_empty() || plan.moves.is_empty() {
        return Ok(Started {
            plan,
            report: None,
            notices: Vec::new(),
        });
    }
    let journal = Journal::open(&config.data_dir)?;
    let (batch_id, entries) = crate::plan::record(&journal, command, &plan)?;
    let mut notices = crate::notice::send_user_notices(config, &entries, mopts.lock_budget).await;
    let mover = Mover::new(&book, &reach, &journal, mopts);
    let report = batch::run(&mover, entries, &bopts, progress).await;
    journal.end_batch(batch_id, report.stopped.as_deref())?;
    notices.extend(crate::notice::send_summary(config, command, &report).await);
    Ok(Started {
        plan,
        report: Some(report),
        notices,
    })
}

/// The request that returns to `store` every account a drain of it took away: each account
/// whose latest finished move left `store` and that still lives where that move put it.
pub async fn back_request(config: &Config, store: &str) -> Result<Request, MoveError> {
    let journal = Journal::open(&config.data_dir)?;
    let book = AccountBook::open(config)
        .await
        .map_err(|e| MoveError::Directory(e.to_string()))?;
    let mut latest: std::collections::BTreeMap<String, Entry> = Default::default();
    for e in journal
        .all()?
        .into_iter()
        .filter(|e| e.phase == Phase::Done)
    {
        latest.insert(e.address.clone(), e);
    }
    let mut accounts = Vec::new();
    for e in latest.into_values().filter(|e| e.source == store) {
        match book.show(&e.address).await {
            Ok(a) if a.server == e.target => accounts.push(e.address),
            // Moved on since, or removed: not the drain's to give back.
            Ok(_) => {}
            Err(err) => tracing::warn!(address = %e.address, "not returned: {err}"),
        }
    }
    Ok(Request {
        accounts,
        to: Some(store.to_string()),
        ..Request::default()
    })
}

/// Continues every move not over, each from its recorded phase.
pub async fn resume(
    config: &Config,
    overrides: &Overrides,
    progress: &dyn Progress,
) -> Result<BatchReport, MoveError> {
    let journal = Journal::open(&config.data_dir)?;
    let entries = journal.unfinished()?;
    if entries.is_empty() {
        return Ok(BatchReport {
            moves: Vec::new(),
            stopped: None,
        });
    }
    let book = AccountBook::open(config)
        .await
        .map_err(|e| MoveError::Directory(e.to_string()))?;
    let reach = Reach::new();
    let (mopts, bopts) = options(config, overrides);
    let mover = Mover::new(&book, &reach, &journal, mopts);
    let report = batch::run(&mover, entries, &bopts, progress).await;
    for e in crate::notice::send_summary(config, "move resume", &report).await {
        tracing::warn!("{e}");
    }
    Ok(report)
}

/// One aborted move.
#[derive(Debug, serde::Serialize)]
pub struct Aborted {
    /// The move.
    pub id: i64,
    /// The account.
    pub address: String,
    /// Its phase now: aborted, or done when it had been switched already.
    pub phase: Option<Phase>,
    /// Why it could not be aborted.
    pub error: Option<String>,
}

/// Aborts the open moves of `accounts` (every open move when empty).
pub async fn abort(config: &Config, accounts: &[String]) -> Result<Vec<Aborted>, MoveError> {
    let journal = Journal::open(&config.data_dir)?;
    let open: Vec<Entry> = journal
        .unfinished()?
        .into_iter()
        .filter(|e| {
            accounts.is_empty() || accounts.iter().any(|a| a.eq_ignore_ascii_case(&e.address))
        })
        .collect();
    for a in accounts {
        if !open.iter().any(|e| e.address.eq_ignore_ascii_case(a)) {
            return Err(MoveError::Config {
                server: "-".into(),
                message: format!("{a} has no open move (see `mailfleet move status`)"),
            });
        }
    }
    let book = AccountBook::open(config)
        .await
        .map_err(|e| MoveError::Directory(e.to_string()))?;
    let reach = Reach::new();
    let (mopts, _) = options(config, &Overrides::default());
    let mover = Mover::new(&book, &reach, &journal, mopts);
    let mut out = Vec::new();
    for e in open {
        let r = mover.abort(e.id).await;
        out.push(Aborted {
            id: e.id,
            address: e.address,
            phase: r.as_ref().ok().copied(),
            error: r.err().map(|e| e.to_string()),
        });
    }
    Ok(out)
}

/// Every move in the journal, with the batch's rate and time left.
#[derive(Debug, serde::Serialize)]
pub struct Status {
    /// Every move, oldest first.
    pub moves: Vec<Entry>,
    /// Bytes per second over the moves that copied, when there were any.
    pub rate: Option<f64>,
    /// Bytes not yet copied by moves that are not over.
    pub remaining_bytes: u64,
    /// The time those need at that rate (s).
    pub eta_secs: Option<f64>,
}

/// The journal's moves (`all`: every batch; else the latest batch and every open move).
pub fn status(config: &Config, all: bool) -> Result<Status, MoveError> {
    let journal = Journal::open(&config.data_dir)?;
    let latest = journal.latest_batch()?;
    let moves: Vec<Entry> = journal
        .all()?
        .into_iter()
        .filter(|e| all || !e.phase.is_over() || Some(e.batch) == latest)
        .collect();
    let (bytes, ms) = moves
        .iter()
        .filter_map(|e| e.first_pass_ms.map(|ms| (e.bytes, ms)))
        .fold((0u64, 0f64), |(b, t), (eb, et)| (b + eb, t + et));
    let rate = (ms > 0.0).then(|| bytes as f64 / (ms / 1000.0));
    let remaining_bytes = moves
        .iter()
        .filter(|e| !e.phase.is_over() && e.passes == 0)
        .map(|e| e.bytes)
        .sum();
    Ok(Status {
        eta_secs: rate
            .filter(|r| *r > 0.0)
            .map(|r| remaining_bytes as f64 / r),
        moves,
        rate,
        remaining_bytes,
    })
}

//! The dashboard's views of runs wired to their libraries: the latest upgrade run and its
//! stop or abort, an upgrade plan, the moves of the journal and a move plan.

use std::future::Future;

use mailfleet_core::child::is_mailfleet as alive;
use mailfleet_core::{Config, Role};
use mailfleet_move::Request;
use mailfleet_serve::web::ops::{
    MoveAsk, MovePlanView, MoveRow, MovesView, PlacementRow, PlanStepRow, PlanView, StoreRow,
    UpgradeStepRow, UpgradeView,
};

/// Drives `work` to its end on this thread with a runtime of its own (the upgrade library's
/// futures are not `Send`).
pub(crate) fn on_own_runtime<F: Future>(work: F) -> Result<F::Output, String> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("no runtime: {e}"))?
        .block_on(work))
}

/// Runs what `make` makes on a blocking thread with a runtime of its own.
async fn apart<T, F, Fut>(make: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, String>>,
{
    blocking(move || on_own_runtime(make())?).await
}

/// Runs `work` (journal reads and writes, which block) off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| format!("the work panicked: {e}"))?
}

fn at(s: Option<i64>) -> Option<chrono::DateTime<chrono::Utc>> {
    s.and_then(|s| chrono::DateTime::from_timestamp(s, 0))
}

/// The latest upgrade run, if any.
pub(crate) async fn upgrade(config: &Config) -> Result<Option<UpgradeView>, String> {
    let data_dir = config.data_dir.clone();
    blocking(move || {
        let journal =
            mailfleet_upgrade::journal::Journal::open(&data_dir).map_err(|e| e.to_string())?;
        let Some(id) = journal.latest().map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let r = journal.get(id).map_err(|e| e.to_string())?;
        Ok(Some(UpgradeView {
            id: r.id,
            created: at(Some(r.created)).unwrap_or_default(),
            running: r.state == "running" && r.owner.is_some_and(alive),
            state: r.state,
            reason: r.reason,
            packages: r.packages,
            abort_requested: r.abort_requested,
            steps: r
                .steps
                .into_iter()
                .map(|s| UpgradeStepRow {
                    n: s.n,
                    server: s.server,
                    phase: s.phase.as_str().to_string(),
                    started: at(s.started),
                    ended: at(s.ended),
                    error: s.error,
                })
                .collect(),
        }))
    })
    .await
}

/// Asks upgrade run `id`, run by a live process, to stop after its current step.
pub(crate) async fn stop_upgrade(config: &Config, id: i64) -> Result<String, String> {
    let data_dir = config.data_dir.clone();
    blocking(move || {
        let journal =
            mailfleet_upgrade::journal::Journal::open(&data_dir).map_err(|e| e.to_string())?;
        let r = journal.get(id).map_err(|e| e.to_string())?;
        if r.state != "running" || !r.owner.is_some_and(alive) {
            return Err(format!(
                "upgrade run {id} is {} and no process runs it: resume or abort it",
                r.state
            ));
        }
        journal.request_abort(id).map_err(|e| e.to_string())?;
        Ok(format!("upgrade run {id} stops after its current step"))
    })
    .await
}

/// Ends upgrade run `id`: at once when no process runs it, else after its current step.
pub(crate) async fn abort_upgrade(config: &Config, id: i64) -> Result<String, String> {
    let config = config.clone();
    apart(move || async move {
        let journal = mailfleet_upgrade::journal::Journal::open(&config.data_dir)
            .map_err(|e| e.to_string())?;
        if journal.open_run().map_err(|e| e.to_string())? != Some(id) {
            return Err(format!("upgrade run {id} is not open"));
        }
        let reach = mailfleet_remote::Reach::new();
        let hooks = super::upgrade_hooks::Wired {
            config: &config,
            halt: None,
        };
        let runner = mailfleet_upgrade::run::Runner {
            config: &config,
            reach: &reach,
            journal: &journal,
            hooks: &hooks,
        };
        let r = runner.abort(id).await.map_err(|e| e.to_string())?;
        Ok(match r.state.as_str() {
            "aborted" => format!("upgrade run {id} is aborted"),
            _ => format!("upgrade run {id} stops after its current step"),
        })
    })
    .await
}

/// The plan of `servers` for `packages`, as of now.
pub(crate) async fn upgrade_plan(
    config: &Config,
    servers: Vec<String>,
    packages: Vec<String>,
) -> Result<PlanView, String> {
    let config = config.clone();
    apart(move || async move {
        let p = mailfleet_upgrade::command::plan(
            &config,
            servers.clone(),
            packages.clone(),
            chrono::Utc::now(),
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(PlanView {
            servers,
            packages,
            ends: p.ends,
            warnings: p.warnings,
            steps: p
                .steps
                .into_iter()
                .map(|s| PlanStepRow {
                    n: s.n,
                    server: s.server,
                    why: s.why,
                    before: s.before,
                    drain: s.drain,
                    after: s.after,
                    start: s.start,
                    waits: s.waits,
                })
                .collect(),
        })
    })
    .await
}

/// The latest batch of moves and every open one.
pub(crate) async fn moves(config: &Config) -> Result<MovesView, String> {
    let config = config.clone();
    let stores = config
        .fleet
        .with_role(Role::Mailbox)
        .map(|s| s.name.clone())
        .collect();
    blocking(move || {
        let s = mailfleet_move::command::status(&config, false).map_err(|e| e.to_string())?;
        Ok(MovesView {
            rate: s.rate,
            remaining_bytes: s.remaining_bytes,
            eta_secs: s.eta_secs,
            stores,
            moves: s
                .moves
                .into_iter()
                .map(|e| MoveRow {
                    over: e.phase.is_over(),
                    phase: e.phase.as_str().to_string(),
                    id: e.id,
                    batch: e.batch,
                    address: e.address,
                    source: e.source,
                    target: e.target,
                    passes: e.passes,
                    messages: e.messages,
                    bytes: e.bytes,
                    lock_ms: e.lock_ms,
                    error: e.error,
                    waiting: e.waiting,
                })
                .collect(),
        })
    })
    .await
}

/// The request `ask` makes, and the command it is.
async fn request_of(config: &Config, ask: &MoveAsk) -> Result<(Request, String), String> {
    if let Some(store) = &ask.back {
        let r = mailfleet_move::command::back_request(config, store)
            .await
            .map_err(|e| e.to_string())?;
        return Ok((r, format!("move back {store}")));
    }
    if let Some(store) = &ask.drain {
        let r = Request {
            from: vec![store.clone()],
            ..Request::default()
        };
        return Ok((r, format!("move drain {store}")));
    }
    let r = Request {
        accounts: ask.accounts.clone(),
        to: ask.to.clone(),
        ..Request::default()
    };
    if let Some(problem) = r.problem() {
        return Err(problem.to_string());
    }
    let what = r.describe();
    Ok((r, what))
}

/// What `ask` would move where.
pub(crate) async fn move_plan(config: &Config, ask: MoveAsk) -> Result<MovePlanView, String> {
    let config = config.clone();
    apart(move || async move {
        let (request, what) = request_of(&config, &ask).await?;
        let started = mailfleet_move::command::start(
            &config,
            &request,
            &what,
            true,
            &mailfleet_move::command::Overrides::default(),
            &mailfleet_move::Quiet,
        )
        .await
        .map_err(|e| e.to_string())?;
        let p = started.plan;
        Ok(MovePlanView {
            ask,
            what,
            skipped: p.skipped,
            refused: p.refused,
            moves: p
                .moves
                .into_iter()
                .map(|m| PlacementRow {
                    address: m.address,
                    source: m.source,
                    target: m.target,
                    messages: m.size.messages,
                    bytes: m.size.bytes,
                    why: m.why,
                })
                .collect(),
            stores: p
                .stores
                .into_iter()
                .map(|s| StoreRow {
                    name: s.name,
                    available: s.available,
                    keep_free: s.keep_free,
                    incoming: s.incoming,
                    excluded: s.excluded,
                })
                .collect(),
        })
    })
    .await
}

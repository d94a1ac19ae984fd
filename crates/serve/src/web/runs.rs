//! The dashboard's runs: the upgrades page (the latest run; a plan asked for; Start, Resume,
//! Stop, Abort) and the moves page (the latest batch and open moves; Move, Drain, Move back,
//! Resume, Stop). Starting a run needs a session, its CSRF token and the `runs` part; it is
//! recorded in the audit log when it starts, and its result when the run ends.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use mailfleet_core::audit::AuditLog;
use mailfleet_core::config::ServePart;

use super::act::{Action, CsrfForm, act, operator_of};
use super::{Shared, Web, actor, fail, operator_session, page, page_runs, unauthorized};
use crate::runs::{Job, Kind, RunRow, Tuning};
use crate::web::ops::MoveAsk;

/// Servers or accounts as typed: separated by commas or spaces.
fn list(text: Option<&str>) -> Vec<String> {
    text.unwrap_or("")
        .split([',', ' ', '\n', '\t'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn runs_on(web: &Web) -> bool {
    web.config.serve.parts.contains(&ServePart::Runs)
}

fn rows(web: &Web, kind: Kind) -> Vec<RunRow> {
    web.runs
        .rows()
        .into_iter()
        .filter(|r| r.kind == kind)
        .collect()
}

/// The audit log's name of a job's command, and its arguments.
fn audit_name(job: &Job) -> (&'static str, Vec<String>) {
    let words: Vec<String> = job
        .describe()
        .split_whitespace()
        .map(String::from)
        .collect();
    let name = match job {
        Job::UpgradeRun { .. } => "upgrade run",
        Job::UpgradeResume => "upgrade resume",
        Job::Move { what, .. } if what.starts_with("move drain") => "move drain",
        Job::Move { .. } => "move",
        Job::MoveBack { .. } => "move back",
        Job::MoveResume { .. } => "move resume",
    };
    let skip = name.split(' ').count();
    (name, words.into_iter().skip(skip).collect())
}

/// Starts `job` for the form's operator in the daemon; the browser goes back to `back`.
async fn start(
    web: &Web,
    peer: SocketAddr,
    headers: &HeaderMap,
    csrf: &str,
    job: Job,
    back: &str,
    title: &str,
) -> Response {
    let (op, token) = match operator_of(web, headers, csrf) {
        Ok(o) => o,
        Err(refused) => return *refused,
    };
    let refuse = |why: &str| {
        (
            StatusCode::CONFLICT,
            Html(page::message(title, why, &op, &token)),
        )
            .into_response()
    };
    if !runs_on(web) {
        return refuse(
            "This daemon runs no moves or upgrades: add \"runs\" to [serve] parts, or start it at the command line.",
        );
    }
    let (name, args) = audit_name(&job);
    let id = match web.audit.begin(&actor(&op, peer), name, &args) {
        Ok(id) => id,
        Err(e) => {
            return fail(format!(
                "{e}: `{name}` is not taken without its audit record"
            ));
        }
    };
    let audit = AuditLog::new(&web.config.data_dir);
    let logged = id.clone();
    let started = web.runs.start(web.config.clone(), job, &op, move |ended| {
        let result = crate::runs_socket::result_of(ended);
        if let Err(e) = audit.end(&logged, &result) {
            tracing::error!("dashboard: {e}");
        }
    });
    match started {
        Ok(_) => Redirect::to(back).into_response(),
        Err(why) => {
            if let Err(e) = web.audit.end(&id, &format!("error: {why}")) {
                tracing::error!("dashboard: {e}");
            }
            refuse(&why)
        }
    }
}

#[derive(serde::Deserialize)]
pub(super) struct PlanQuery {
    servers: Option<String>,
    packages: Option<String>,
    plan: Option<String>,
}

impl PlanQuery {
    fn asked(&self) -> bool {
        self.plan.is_some() || self.servers.is_some() || self.packages.is_some()
    }
}

pub(super) async fn upgrades_page(
    State(web): Shared,
    headers: HeaderMap,
    Query(q): Query<PlanQuery>,
) -> Response {
    let Some((_, s, op)) = operator_session(&web, &headers) else {
        return Redirect::to("/login").into_response();
    };
    let run = match web.ops.upgrade().await {
        Ok(run) => run,
        Err(e) => return fail(e),
    };
    let plan = if q.asked() {
        Some(
            web.ops
                .upgrade_plan(list(q.servers.as_deref()), list(q.packages.as_deref()))
                .await,
        )
    } else {
        None
    };
    let asked = plan.as_ref().map(|p| p.as_ref().map_err(String::as_str));
    let rows = rows(&web, Kind::Upgrade);
    Html(page_runs::upgrades(
        run.as_ref(),
        asked,
        &rows,
        runs_on(&web),
        &op,
        &s.csrf,
    ))
    .into_response()
}

pub(super) async fn api_upgrades(
    State(web): Shared,
    headers: HeaderMap,
    Query(q): Query<PlanQuery>,
) -> Response {
    if operator_session(&web, &headers).is_none() {
        return unauthorized();
    }
    let run = match web.ops.upgrade().await {
        Ok(run) => run,
        Err(e) => return fail(e),
    };
    let eta = run.as_ref().and_then(|r| r.eta(chrono::Utc::now()));
    let plan = if q.asked() {
        match web
            .ops
            .upgrade_plan(list(q.servers.as_deref()), list(q.packages.as_deref()))
            .await
        {
            Ok(p) => serde_json::json!(p),
            Err(e) => serde_json::json!({ "error": e }),
        }
    } else {
        serde_json::Value::Null
    };
    axum::Json(serde_json::json!({
        "run": run,
        "eta": eta,
        "plan": plan,
        "runs": rows(&web, Kind::Upgrade),
    }))
    .into_response()
}

#[derive(serde::Deserialize)]
pub(super) struct StartForm {
    servers: Option<String>,
    packages: Option<String>,
    csrf: String,
}

pub(super) async fn upgrade_start(
    State(web): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<StartForm>,
) -> Response {
    let job = Job::UpgradeRun {
        servers: list(f.servers.as_deref()),
        packages: list(f.packages.as_deref()),
    };
    start(&web, peer, &headers, &f.csrf, job, "/upgrades", "Upgrades").await
}

pub(super) async fn upgrade_resume(
    State(web): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let job = Job::UpgradeResume;
    start(&web, peer, &headers, &f.csrf, job, "/upgrades", "Upgrades").await
}

#[derive(serde::Deserialize)]
pub(super) struct RunForm {
    id: i64,
    csrf: String,
}

/// Asks the running upgrade to stop after its current step; audited as `upgrade abort`.
pub(super) async fn upgrade_stop(
    State(web): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<RunForm>,
) -> Response {
    let a = Action {
        name: "upgrade abort",
        args: vec![f.id.to_string()],
        back: "/upgrades",
        title: "Upgrades",
    };
    act(&web, peer, &headers, &f.csrf, a, web.ops.stop_upgrade(f.id)).await
}

/// Ends a halted run no process runs; audited as `upgrade abort`.
pub(super) async fn upgrade_abort(
    State(web): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<RunForm>,
) -> Response {
    let a = Action {
        name: "upgrade abort",
        args: vec![f.id.to_string()],
        back: "/upgrades",
        title: "Upgrades",
    };
    act(
        &web,
        peer,
        &headers,
        &f.csrf,
        a,
        web.ops.abort_upgrade(f.id),
    )
    .await
}

#[derive(serde::Deserialize)]
pub(super) struct MovesQuery {
    accounts: Option<String>,
    to: Option<String>,
    drain: Option<String>,
    back: Option<String>,
}

impl MovesQuery {
    /// The plan asked for, if one is.
    fn ask(&self) -> Option<MoveAsk> {
        let some = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        let ask = MoveAsk {
            accounts: list(self.accounts.as_deref()),
            to: some(&self.to),
            drain: some(&self.drain),
            back: some(&self.back),
        };
        (ask != MoveAsk::default()).then_some(ask)
    }
}

pub(super) async fn moves_page(
    State(web): Shared,
    headers: HeaderMap,
    Query(q): Query<MovesQuery>,
) -> Response {
    let Some((_, s, op)) = operator_session(&web, &headers) else {
        return Redirect::to("/login").into_response();
    };
    let view = match web.ops.moves().await {
        Ok(view) => view,
        Err(e) => return fail(e),
    };
    let plan = match q.ask() {
        Some(ask) => Some(web.ops.move_plan(ask).await),
        None => None,
    };
    let asked = plan.as_ref().map(|p| p.as_ref().map_err(String::as_str));
    Html(page_runs::moves(
        &view,
        asked,
        &rows(&web, Kind::Move),
        runs_on(&web),
        &op,
        &s.csrf,
    ))
    .into_response()
}

pub(super) async fn api_moves(
    State(web): Shared,
    headers: HeaderMap,
    Query(q): Query<MovesQuery>,
) -> Response {
    if operator_session(&web, &headers).is_none() {
        return unauthorized();
    }
    let view = match web.ops.moves().await {
        Ok(view) => view,
        Err(e) => return fail(e),
    };
    let plan = match q.ask() {
        Some(ask) => match web.ops.move_plan(ask).await {
            Ok(p) => serde_json::json!(p),
            Err(e) => serde_json::json!({ "error": e }),
        },
        None => serde_json::Value::Null,
    };
    axum::Json(serde_json::json!({
        "moves": view,
        "plan": plan,
        "runs": rows(&web, Kind::Move),
    }))
    .into_response()
}

#[derive(serde::Deserialize)]
pub(super) struct MoveForm {
    accounts: Option<String>,
    to: Option<String>,
    csrf: String,
}

pub(super) async fn moves_start(
    State(web): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<MoveForm>,
) -> Response {
    let accounts = list(f.accounts.as_deref());
    let to = f.to.filter(|t| !t.trim().is_empty());
    if accounts.is_empty() {
        let (op, token) = match operator_of(&web, &headers, &f.csrf) {
            Ok(o) => o,
            Err(refused) => return *refused,
        };
        return (
            StatusCode::BAD_REQUEST,
            Html(page::message(
                "Moves",
                "Name the accounts to move.",
                &op,
                &token,
            )),
        )
            .into_response();
    }
    let what = format!(
        "move {}{}",
        accounts.join(" "),
        to.as_deref()
            .map(|t| format!(" --to {t}"))
            .unwrap_or_default()
    );
    let job = Job::Move {
        accounts,
        domains: Vec::new(),
        from: Vec::new(),
        to,
        what,
        tuning: Tuning::default(),
    };
    start(&web, peer, &headers, &f.csrf, job, "/moves", "Moves").await
}

#[derive(serde::Deserialize)]
pub(super) struct StoreForm {
    store: String,
    csrf: String,
}

pub(super) async fn moves_drain(
    State(web): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<StoreForm>,
) -> Response {
    let job = Job::Move {
        accounts: Vec::new(),
        domains: Vec::new(),
        what: format!("move drain {}", f.store),
        from: vec![f.store],
        to: None,
        tuning: Tuning::default(),
    };
    start(&web, peer, &headers, &f.csrf, job, "/moves", "Moves").await
}

pub(super) async fn moves_back(
    State(web): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<StoreForm>,
) -> Response {
    let job = Job::MoveBack {
        store: f.store,
        tuning: Tuning::default(),
    };
    start(&web, peer, &headers, &f.csrf, job, "/moves", "Moves").await
}

pub(super) async fn moves_resume(
    State(web): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let job = Job::MoveResume {
        tuning: Tuning::default(),
    };
    start(&web, peer, &headers, &f.csrf, job, "/moves", "Moves").await
}

/// Stops the daemon's move batch after the moves in flight: those not started are aborted.
pub(super) async fn moves_stop(
    State(web): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let who = operator_session(&web, &headers)
        .map(|(_, _, op)| op)
        .unwrap_or_default();
    let a = Action {
        name: "move stop",
        args: Vec::new(),
        back: "/moves",
        title: "Moves",
    };
    let runs = web.runs.clone();
    act(&web, peer, &headers, &f.csrf, a, async move {
        runs.stop(Kind::Move, &who)
    })
    .await
}

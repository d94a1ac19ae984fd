//! The dashboard's actions: held mail released or purged, a send block lifted, a backup
//! started; each needs a
//! session and its CSRF token, and goes to the audit log with the operator and the client's
//! address.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::{Shared, Web, actor, fail, operator_session, page, unauthorized};

#[derive(serde::Deserialize)]
pub(super) struct AccountForm {
    account: String,
    csrf: String,
}

#[derive(serde::Deserialize)]
pub(super) struct CsrfForm {
    pub(super) csrf: String,
}

pub(super) async fn policy_page(State(web): Shared, headers: HeaderMap) -> Response {
    let Some((_, s, op)) = operator_session(&web, &headers) else {
        return Redirect::to("/login").into_response();
    };
    match web.ops.policy().await {
        Ok(view) => Html(page::policy(&view, &op, &s.csrf)).into_response(),
        Err(e) => fail(e),
    }
}

pub(super) async fn api_policy(State(web): Shared, headers: HeaderMap) -> Response {
    if operator_session(&web, &headers).is_none() {
        return unauthorized();
    }
    match web.ops.policy().await {
        Ok(view) => axum::Json(view).into_response(),
        Err(e) => fail(e),
    }
}

/// What a policy button does to an account.
#[derive(Clone, Copy)]
enum OnAccount {
    Release,
    Purge,
    Unblock,
}

/// One action of a form: what the audit log calls it, with its arguments, and where the
/// browser goes after it (`back`, or the error on a page titled `title`).
pub(super) struct Action<'a> {
    pub(super) name: &'a str,
    pub(super) args: Vec<String>,
    pub(super) back: &'a str,
    pub(super) title: &'a str,
}

/// The session's operator and CSRF token, when the form's token is the session's; else the
/// response refusing it.
pub(super) fn operator_of(
    web: &Web,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<(String, String), Box<Response>> {
    let Some((_, s, op)) = operator_session(web, headers) else {
        return Err(Box::new(Redirect::to("/login").into_response()));
    };
    if !super::auth::same(&s.csrf, csrf) {
        return Err(Box::new(
            (StatusCode::FORBIDDEN, "the form's token does not match").into_response(),
        ));
    }
    Ok((op, s.csrf))
}

/// Takes `run` for the session's operator: the form's token checked, the action recorded in
/// the audit log before (not taken if it cannot be) and its result after.
pub(super) async fn act(
    web: &Web,
    peer: SocketAddr,
    headers: &HeaderMap,
    csrf: &str,
    a: Action<'_>,
    run: impl Future<Output = Result<String, String>>,
) -> Response {
    let (op, token) = match operator_of(web, headers, csrf) {
        Ok(o) => o,
        Err(refused) => return *refused,
    };
    let id = match web.audit.begin(&actor(&op, peer), a.name, &a.args) {
        Ok(id) => id,
        Err(e) => {
            return fail(format!(
                "{e}: `{}` is not taken without its audit record",
                a.name
            ));
        }
    };
    let r = run.await;
    let result = match &r {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("error: {e}"),
    };
    if let Err(e) = web.audit.end(&id, &result) {
        tracing::error!("dashboard: {e}");
    }
    match r {
        Ok(_) => Redirect::to(a.back).into_response(),
        Err(e) => (
            StatusCode::CONFLICT,
            Html(page::message(a.title, &e, &op, &token)),
        )
            .into_response(),
    }
}

/// Runs `what` on the form's account.
async fn on_account(
    web: Arc<Web>,
    peer: SocketAddr,
    headers: HeaderMap,
    f: AccountForm,
    what: OnAccount,
) -> Response {
    let (name, run) = match what {
        OnAccount::Release => ("policy release", web.ops.release(&f.account)),
        OnAccount::Purge => ("policy purge", web.ops.purge(&f.account)),
        OnAccount::Unblock => ("policy unblock", web.ops.unblock(&f.account)),
    };
    let a = Action {
        name,
        args: vec![f.account.clone()],
        back: "/policy",
        title: "Policy",
    };
    act(&web, peer, &headers, &f.csrf, a, run).await
}

pub(super) async fn release(
    State(web): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<AccountForm>,
) -> Response {
    on_account(web, peer, headers, f, OnAccount::Release).await
}

pub(super) async fn purge(
    State(web): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<AccountForm>,
) -> Response {
    on_account(web, peer, headers, f, OnAccount::Purge).await
}

pub(super) async fn unblock(
    State(web): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<AccountForm>,
) -> Response {
    on_account(web, peer, headers, f, OnAccount::Unblock).await
}

/// Each store's backup check from the monitor's latest round: freshness without reading
/// status files here, which may sit on a hanging mount.
fn freshness(web: &Web) -> Vec<crate::board::Row> {
    web.board
        .round()
        .rows
        .into_iter()
        .filter(|r| r.check == "backup")
        .collect()
}

pub(super) async fn backups_page(State(web): Shared, headers: HeaderMap) -> Response {
    let Some((_, s, op)) = operator_session(&web, &headers) else {
        return Redirect::to("/login").into_response();
    };
    // A repository that cannot be read is said on the page, under the stores' freshness.
    let repo = web.ops.repository().await;
    Html(page::backups(
        web.board.backup().as_ref(),
        web.board.next_backup(),
        &freshness(&web),
        &repo,
        &op,
        &s.csrf,
    ))
    .into_response()
}

pub(super) async fn api_backups(State(web): Shared, headers: HeaderMap) -> Response {
    if operator_session(&web, &headers).is_none() {
        return unauthorized();
    }
    let (repository, error) = match web.ops.repository().await {
        Ok(r) => (Some(r), None),
        Err(e) => (None, Some(e)),
    };
    axum::Json(serde_json::json!({
        "job": web.board.backup(),
        "next_scheduled": web.board.next_backup(),
        "freshness": freshness(&web),
        "repository": repository,
        "repository_error": error,
    }))
    .into_response()
}

/// Starts a backup of every store in the background; the page shows it running, then its
/// result. One at a time.
pub(super) async fn backup_run(
    State(web): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let (op, csrf) = match operator_of(&web, &headers, &f.csrf) {
        Ok(o) => o,
        Err(refused) => return *refused,
    };
    if !web.board.start_backup(&op) {
        return (
            StatusCode::CONFLICT,
            Html(page::message(
                "Backups",
                "A backup started here still runs.",
                &op,
                &csrf,
            )),
        )
            .into_response();
    }
    let id = match web.audit.begin(&actor(&op, peer), "backup run", &[]) {
        Ok(id) => id,
        Err(e) => {
            web.board.end_backup(format!("not started: {e}"));
            return fail(format!(
                "{e}: `backup run` is not taken without its audit record"
            ));
        }
    };
    let job = web.clone();
    tokio::spawn(async move {
        let r = job.ops.backup().await;
        let (shown, logged) = match r {
            Ok(did) => (did, "ok".to_string()),
            Err(e) => (format!("failed: {e}"), format!("error: {e}")),
        };
        if let Err(e) = job.audit.end(&id, &logged) {
            tracing::error!("dashboard: {e}");
        }
        job.board.end_backup(shown);
    });
    Redirect::to("/backups").into_response()
}

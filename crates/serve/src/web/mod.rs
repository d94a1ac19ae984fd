//! The web dashboard (axum): server-rendered pages and the same data as JSON under `/api/`,
//! on loopback. Everything but the login form and the stylesheet needs a session: a page
//! without one redirects to `/login`, an API call gets 401. Every form carries its session's
//! CSRF token, checked on every POST. Each response has a Content-Security-Policy allowing
//! nothing but this origin. Logins (and their failures) go to the audit log with the
//! operator and the client's address; no password or hash is ever shown or logged.

mod act;
pub mod alarms;
pub mod auth;
pub mod charts;
mod listen;
pub mod ops;
pub mod page;
pub mod page_runs;
mod runs;
mod svg;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt as _;
use mailfleet_core::Config;
use mailfleet_core::audit::{Actor, AuditLog};
use mailfleet_core::shutdown::Shutdown;

use crate::board::Board;
use auth::{COOKIE, Gate, Session};

/// What every handler shares.
struct Web {
    config: Config,
    board: Arc<Board>,
    gate: Arc<Gate>,
    audit: AuditLog,
    ops: Arc<dyn ops::Ops>,
    runs: Arc<crate::runs::Runs>,
}

type Shared = State<Arc<Web>>;

fn cookie_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

fn set_cookie(id: &str, max_age: std::time::Duration) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
        max_age.as_secs()
    )
}

/// The logged-in session of a request, with its cookie token.
fn operator_session(web: &Web, headers: &HeaderMap) -> Option<(String, Session, String)> {
    let id = cookie_of(headers)?;
    let s = web.gate.get(&id)?;
    let op = s.operator.clone()?;
    Some((id, s, op))
}

fn fail(e: impl std::fmt::Display) -> Response {
    tracing::error!("dashboard: {e}");
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}

async fn login_form(State(web): Shared, headers: HeaderMap) -> Response {
    if let Some(id) = cookie_of(&headers)
        && let Some(s) = web.gate.get(&id)
    {
        if s.operator.is_some() {
            return Redirect::to("/").into_response();
        }
        return Html(page::login(&s.csrf, None)).into_response();
    }
    match web.gate.open(None, std::time::Duration::from_secs(3600)) {
        Ok((id, s)) => (
            [(
                header::SET_COOKIE,
                set_cookie(&id, std::time::Duration::from_secs(3600)),
            )],
            Html(page::login(&s.csrf, None)),
        )
            .into_response(),
        Err(e) => fail(e),
    }
}

#[derive(serde::Deserialize)]
struct LoginForm {
    name: String,
    password: String,
    csrf: String,
}

fn actor(who: &str, peer: SocketAddr) -> Actor {
    Actor {
        who: who.to_string(),
        via: "web".into(),
        from: peer.ip().to_string(),
    }
}

/// Records `action` by `who` and its result in the audit log.
fn audited(web: &Web, who: &str, peer: SocketAddr, action: &str, args: &[String], result: &str) {
    let r = web
        .audit
        .begin(&actor(who, peer), action, args)
        .and_then(|id| web.audit.end(&id, result));
    if let Err(e) = r {
        tracing::error!("dashboard: {e}");
    }
}

async fn login(
    State(web): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let Some((id, s)) = cookie_of(&headers).and_then(|id| web.gate.get(&id).map(|s| (id, s)))
    else {
        return (
            StatusCode::FORBIDDEN,
            "no session: load the login page first",
        )
            .into_response();
    };
    if !auth::same(&s.csrf, &f.csrf) {
        return (StatusCode::FORBIDDEN, "the form's token does not match").into_response();
    }
    let keys = vec![format!("ip {}", peer.ip()), format!("account {}", f.name)];
    if let Some(wait) = web.gate.wait(&keys) {
        let secs = wait.as_secs().max(1);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, secs.to_string())],
            Html(page::login(
                &s.csrf,
                Some(&format!("Too many failed logins: try again in {secs} s.")),
            )),
        )
            .into_response();
    }
    let ok = match checked(&web, &f.name, f.password).await {
        Ok(ok) => ok,
        Err(e) => {
            // Not a failed guess: the brake is not moved, the operator is told.
            tracing::error!("dashboard: login of {}: {e}", f.name);
            audited(
                &web,
                &f.name,
                peer,
                "web login",
                &[],
                &format!("error: {e}"),
            );
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Html(page::login(
                    &s.csrf,
                    Some("The directory cannot be asked now; try again, or log in as a configured operator."),
                )),
            )
                .into_response();
        }
    };
    if !ok {
        web.gate.failed(&keys);
        audited(
            &web,
            &f.name,
            peer,
            "web login",
            &[],
            "error: wrong name or password",
        );
        return (
            StatusCode::UNAUTHORIZED,
            Html(page::login(&s.csrf, Some("Wrong name or password."))),
        )
            .into_response();
    }
    web.gate.succeeded(&keys);
    web.gate.close(&id);
    let lifetime = web.config.serve.session_lifetime;
    match web.gate.open(Some(f.name.clone()), lifetime) {
        Ok((new, _)) => {
            audited(&web, &f.name, peer, "web login", &[], "ok");
            (
                [(header::SET_COOKIE, set_cookie(&new, lifetime))],
                Redirect::to("/"),
            )
                .into_response()
        }
        Err(e) => fail(e),
    }
}

/// Whether `name` logs in with `password`: a configured operator by its Argon2 hash, else,
/// with `[serve] ldap_group`, an account of the directory in that group by its own bind.
/// An unknown name is verified against a stand-in hash, taking as long as a known one.
async fn checked(web: &Web, name: &str, password: String) -> Result<bool, String> {
    let hash = web
        .config
        .serve
        .operators
        .iter()
        .find(|o| o.name == name)
        .map(|o| o.password_hash.clone());
    if hash.is_none()
        && let (Some(group), mailfleet_core::config::DirectoryConfig::Ldap(ldap)) =
            (&web.config.serve.ldap_group, &web.config.directory)
    {
        return mailfleet_core::directory::group_login(ldap, group, name, &password)
            .await
            .map_err(|e| e.to_string());
    }
    // Argon2 is slow on purpose: off the async threads.
    tokio::task::spawn_blocking(move || auth::verify(hash.as_deref(), &password))
        .await
        .map_err(|e| format!("verifying the password: {e}"))
}

async fn logout(State(web): Shared, headers: HeaderMap, Form(f): Form<act::CsrfForm>) -> Response {
    let Some((id, s, _)) = operator_session(&web, &headers) else {
        return Redirect::to("/login").into_response();
    };
    if !auth::same(&s.csrf, &f.csrf) {
        return (StatusCode::FORBIDDEN, "the form's token does not match").into_response();
    }
    web.gate.close(&id);
    (
        [(
            header::SET_COOKIE,
            set_cookie("", std::time::Duration::ZERO),
        )],
        Redirect::to("/login"),
    )
        .into_response()
}

async fn overview(State(web): Shared, headers: HeaderMap) -> Response {
    match operator_session(&web, &headers) {
        Some((_, s, op)) => Html(page::overview(&web.board.round(), &op, &s.csrf)).into_response(),
        None => Redirect::to("/login").into_response(),
    }
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(serde_json::json!({ "error": "log in first" })),
    )
        .into_response()
}

async fn api_overview(State(web): Shared, headers: HeaderMap) -> Response {
    match operator_session(&web, &headers) {
        Some(_) => axum::Json(web.board.round()).into_response(),
        None => unauthorized(),
    }
}

async fn audit_page(State(web): Shared, headers: HeaderMap) -> Response {
    let Some((_, s, op)) = operator_session(&web, &headers) else {
        return Redirect::to("/login").into_response();
    };
    match web.audit.read(None) {
        Ok(r) => Html(page::audit(&r.actions, &op, &s.csrf)).into_response(),
        Err(e) => fail(e),
    }
}

async fn api_audit(State(web): Shared, headers: HeaderMap) -> Response {
    if operator_session(&web, &headers).is_none() {
        return unauthorized();
    }
    match web.audit.read(None) {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => fail(e),
    }
}

/// The latest round as server-sent events: one at once, then one after every round.
async fn events(State(web): Shared, headers: HeaderMap) -> Response {
    if operator_session(&web, &headers).is_none() {
        return unauthorized();
    }
    let board = web.board.clone();
    let rx = board.watch();
    let stream = futures::stream::unfold((rx, board, true), |(mut rx, board, first)| async move {
        if !first && rx.changed().await.is_err() {
            return None;
        }
        let data = serde_json::to_string(&board.round()).unwrap_or_default();
        let event = axum::response::sse::Event::default()
            .event("round")
            .data(data);
        Some((Ok::<_, std::convert::Infallible>(event), (rx, board, false)))
    });
    axum::response::sse::Sse::new(stream)
        .keep_alive(axum::response::sse::KeepAlive::default())
        .into_response()
}

async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript")], page::SCRIPT).into_response()
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css")], page::STYLE).into_response()
}

/// Says how long the dashboard took to make each response (`Server-Timing: app;dur=MS`),
/// as a browser's developer tools and the benchmark read it.
async fn timed(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let mut r = next.run(req).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if let Ok(v) = HeaderValue::from_str(&format!("app;dur={ms:.2}")) {
        r.headers_mut().insert("server-timing", v);
    }
    r
}

async fn headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    for (k, v) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    r
}

/// What the dashboard shows and acts on, living across reloads but for the config.
#[derive(Clone)]
pub struct Parts {
    /// What the monitor and the scheduled backups know now.
    pub board: Arc<Board>,
    /// Sessions and the login brake.
    pub gate: Arc<Gate>,
    /// The actions, given by the daemon's caller.
    pub ops: Arc<dyn ops::Ops>,
    /// The daemon's moves and upgrades.
    pub runs: Arc<crate::runs::Runs>,
}

/// The dashboard's routes over `parts`, with its audit log in the config's data directory.
pub fn router(config: Config, parts: Parts) -> Router {
    let audit = AuditLog::new(&config.data_dir);
    let web = Arc::new(Web {
        config,
        board: parts.board,
        gate: parts.gate,
        audit,
        ops: parts.ops,
        runs: parts.runs,
    });
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/", get(overview))
        .route("/audit", get(audit_page))
        .route("/alarms", get(alarms::alarms_page))
        .route("/api/alarms", get(alarms::api_alarms))
        .route("/api/overview", get(api_overview))
        .route("/api/audit", get(api_audit))
        .route("/policy", get(act::policy_page))
        .route("/policy/release", post(act::release))
        .route("/policy/purge", post(act::purge))
        .route("/policy/unblock", post(act::unblock))
        .route("/api/policy", get(act::api_policy))
        .route("/backups", get(act::backups_page))
        .route("/backups/run", post(act::backup_run))
        .route("/api/backups", get(act::api_backups))
        .route("/upgrades", get(runs::upgrades_page))
        .route("/upgrades/start", post(runs::upgrade_start))
        .route("/upgrades/resume", post(runs::upgrade_resume))
        .route("/upgrades/stop", post(runs::upgrade_stop))
        .route("/upgrades/abort", post(runs::upgrade_abort))
        .route("/api/upgrades", get(runs::api_upgrades))
        .route("/moves", get(runs::moves_page))
        .route("/moves/start", post(runs::moves_start))
        .route("/moves/drain", post(runs::moves_drain))
        .route("/moves/back", post(runs::moves_back))
        .route("/moves/resume", post(runs::moves_resume))
        .route("/moves/stop", post(runs::moves_stop))
        .route("/api/moves", get(runs::api_moves))
        .route("/charts", get(charts::page))
        .route("/api/charts", get(charts::api))
        .route("/events", get(events))
        .route("/app.js", get(script))
        .route("/style.css", get(style))
        .layer(axum::middleware::map_response(headers))
        .layer(axum::middleware::from_fn(timed))
        .with_state(web)
}

/// Serves the dashboard on `[serve] listen` until `shutdown`; requests in flight finish
/// within the grace.
pub async fn run(config: Config, parts: Parts, shutdown: Shutdown) -> Result<(), String> {
    let listen = config.serve.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("dashboard on {listen}: {e}"))?;
    let tls = match &config.serve.tls {
        Some(t) => Some(
            mailfleet_core::tls::server(&t.cert_file, &t.key_file)
                .map_err(|e| format!("dashboard: serve.tls: {e}"))?,
        ),
        None => None,
    };
    let app = router(config, parts).into_make_service_with_connect_info::<SocketAddr>();
    let stop = shutdown.clone();
    let done = async move { stop.wait().await };
    let served = match tls {
        Some(tls) => {
            tracing::info!("dashboard on https://{listen}/");
            let tls = listen::TlsListener::new(listener, tls)
                .map_err(|e| format!("dashboard on {listen}: {e}"))?;
            // tap_io: its connections give the client's address as plain TCP ones do.
            axum::serve(tls.tap_io(|_| {}), app)
                .with_graceful_shutdown(done)
                .await
        }
        None => {
            tracing::info!("dashboard on http://{listen}/");
            axum::serve(listener, app)
                .with_graceful_shutdown(done)
                .await
        }
    };
    served.map_err(|e| format!("dashboard on {listen}: {e}"))
}

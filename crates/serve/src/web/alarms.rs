//! The alarms page: those that hold (each server's check in trouble, since when, the latest
//! alarm about it) and every alarm the monitor sent in the history's retention, newest
//! first; the same at `/api/alarms`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::page::{esc, frame};
use super::{Shared, fail, operator_session, unauthorized};
use crate::web::ops::AlarmsView;

/// Past alarms shown on the page (the API gives them all).
const SHOWN: usize = 300;

fn class(state: &str, kind: &str) -> &'static str {
    match (kind, state) {
        ("recovery", _) => "OK",
        (_, "CRITICAL") => "CRITICAL",
        (_, "WARNING") => "WARNING",
        (_, "UNKNOWN") => "UNKNOWN",
        _ => "",
    }
}

/// The page.
pub fn page(view: &AlarmsView, operator: &str, csrf: &str) -> String {
    let mut body = String::new();
    if view.active.is_empty() {
        body.push_str("<p id=\"active\" data-count=\"0\">No alarm holds.</p>");
    } else {
        body.push_str(&format!(
            "<h2>Holding</h2><table id=\"active\" data-count=\"{}\"><tr><th>Server</th><th>Check</th><th>State</th><th>Since</th><th>Latest</th></tr>",
            view.active.len()
        ));
        for a in &view.active {
            let l = &a.latest;
            body.push_str(&format!(
                "<tr data-server=\"{sv}\" data-check=\"{ck}\"><td>{sv}</td><td>{ck}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
                class(&l.state, &l.kind),
                esc(&l.state),
                a.since.format("%Y-%m-%d %H:%M:%S UTC"),
                esc(&l.message),
                sv = esc(&l.server),
                ck = esc(&l.check),
            ));
        }
        body.push_str("</table>");
    }
    body.push_str("<h2>Sent</h2>");
    if view.past.is_empty() {
        body.push_str("<p>No alarm in the history.</p>");
    } else {
        body.push_str("<table id=\"past\"><tr><th>When</th><th>Alarm</th><th>Server</th><th>Check</th><th>State</th><th>Message</th></tr>");
        for a in view.past.iter().take(SHOWN) {
            body.push_str(&format!(
                "<tr data-kind=\"{k}\" data-server=\"{sv}\" data-check=\"{ck}\"><td>{}</td><td>{k}</td><td>{sv}</td><td>{ck}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
                a.at.format("%Y-%m-%d %H:%M:%S"),
                class(&a.state, &a.kind),
                esc(&a.state),
                esc(&a.message),
                k = esc(&a.kind),
                sv = esc(&a.server),
                ck = esc(&a.check),
            ));
        }
        body.push_str("</table>");
        if view.past.len() > SHOWN {
            body.push_str(&format!(
                "<p>{} older alarms at <a href=\"/api/alarms\">/api/alarms</a>.</p>",
                view.past.len() - SHOWN
            ));
        }
    }
    frame("Alarms", Some((operator, csrf)), &body)
}

pub(super) async fn alarms_page(State(web): Shared, headers: HeaderMap) -> Response {
    let Some((_, s, op)) = operator_session(&web, &headers) else {
        return Redirect::to("/login").into_response();
    };
    match web.ops.alarms().await {
        Ok(view) => Html(page(&view, &op, &s.csrf)).into_response(),
        Err(e) => fail(e),
    }
}

pub(super) async fn api_alarms(State(web): Shared, headers: HeaderMap) -> Response {
    if operator_session(&web, &headers).is_none() {
        return unauthorized();
    }
    match web.ops.alarms().await {
        Ok(view) => axum::Json(view).into_response(),
        Err(e) => fail(e),
    }
}

//! The charts page: the monitor's history over a chosen range (an hour to a month) as
//! server-drawn SVG, one chart per measure (response times per protocol, delivery end to
//! end, queue sizes, disk use, messages per hour), and the same series as JSON at
//! `/api/charts`.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use mailfleet_core::series::Series;
use serde::Serialize;

use super::{Shared, fail, operator_session, page, svg, unauthorized};

/// Spans per chart: fine enough to see a spike, few enough for a fast page.
const SPANS: u32 = 120;

/// The ranges offered, as `?range=` names them.
pub const RANGES: [(&str, Duration); 5] = [
    ("1h", Duration::from_secs(3600)),
    ("6h", Duration::from_secs(6 * 3600)),
    ("24h", Duration::from_secs(86_400)),
    ("7d", Duration::from_secs(7 * 86_400)),
    ("30d", Duration::from_secs(30 * 86_400)),
];

/// What a chart draws of its samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// The mean time the check took, in ms.
    Time,
    /// The largest quantity it measured.
    Value,
}

/// One chart: a check family and what to draw of it.
#[derive(Debug, Clone, Copy)]
struct Spec {
    title: &'static str,
    family: &'static str,
    measure: Measure,
    unit: &'static str,
}

const CHARTS: [Spec; 8] = [
    Spec {
        title: "IMAP login and fetch",
        family: "imap",
        measure: Measure::Time,
        unit: "ms",
    },
    Spec {
        title: "POP3 login and retrieve",
        family: "pop3",
        measure: Measure::Time,
        unit: "ms",
    },
    Spec {
        title: "SMTP greeting",
        family: "smtp",
        measure: Measure::Time,
        unit: "ms",
    },
    Spec {
        title: "LDAP bind and search",
        family: "ldap",
        measure: Measure::Time,
        unit: "ms",
    },
    Spec {
        title: "Delivery end to end",
        family: "e2e",
        measure: Measure::Time,
        unit: "ms",
    },
    Spec {
        title: "MTA queues",
        family: "queue",
        measure: Measure::Value,
        unit: "messages",
    },
    Spec {
        title: "Disk use",
        family: "disk",
        measure: Measure::Value,
        unit: "%",
    },
    Spec {
        // The rate of each look at the log since the one before; a span shows its highest.
        title: "Messages per hour received by each MTA",
        family: "traffic",
        measure: Measure::Value,
        unit: "msg/h",
    },
];

/// A chart as the page and the API give it.
#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    /// What it shows.
    pub title: &'static str,
    /// The check family it is drawn from.
    pub family: &'static str,
    /// Time taken or quantity measured.
    pub measure: Measure,
    /// The unit of its axis.
    pub unit: &'static str,
    /// One series per server and check.
    pub series: Vec<Series>,
}

#[derive(serde::Deserialize)]
pub(super) struct RangeQuery {
    range: Option<String>,
}

/// The range `?range=` names (24 hours without one), or what is wrong with it.
fn range_of(q: &RangeQuery) -> Result<(&'static str, Duration), String> {
    let want = q.range.as_deref().unwrap_or("24h");
    RANGES
        .iter()
        .find(|(name, _)| *name == want)
        .copied()
        .ok_or_else(|| {
            let names: Vec<&str> = RANGES.iter().map(|(n, _)| *n).collect();
            format!("range {want:?} is not one of {}", names.join(", "))
        })
}

/// Every chart over the last `range`, with where it starts and ends.
async fn charts_of(
    web: &super::Web,
    range: Duration,
) -> Result<(DateTime<Utc>, DateTime<Utc>, Vec<Chart>), String> {
    let until = Utc::now();
    let since = until - chrono::Duration::from_std(range).map_err(|e| e.to_string())?;
    let families = CHARTS.iter().map(|c| c.family.to_string()).collect();
    let all = web.ops.history(families, since, until, SPANS).await?;
    let charts = CHARTS
        .iter()
        .zip(all)
        .map(|(c, series)| Chart {
            title: c.title,
            family: c.family,
            measure: c.measure,
            unit: c.unit,
            series,
        })
        .collect();
    Ok((since, until, charts))
}

pub(super) async fn page(
    State(web): Shared,
    headers: HeaderMap,
    Query(q): Query<RangeQuery>,
) -> Response {
    let Some((_, s, op)) = operator_session(&web, &headers) else {
        return Redirect::to("/login").into_response();
    };
    let (name, range) = match range_of(&q) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Html(page::message("Charts", &e, &op, &s.csrf)),
            )
                .into_response();
        }
    };
    match charts_of(&web, range).await {
        Ok((since, until, charts)) => {
            let drawn: Vec<String> = charts
                .iter()
                .map(|c| svg::chart(c, since, until, SPANS))
                .collect();
            Html(page::charts(name, &drawn, &op, &s.csrf)).into_response()
        }
        Err(e) => fail(e),
    }
}

pub(super) async fn api(
    State(web): Shared,
    headers: HeaderMap,
    Query(q): Query<RangeQuery>,
) -> Response {
    if operator_session(&web, &headers).is_none() {
        return unauthorized();
    }
    let (name, range) = match range_of(&q) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(serde_json::json!({ "error": e })),
            )
                .into_response();
        }
    };
    match charts_of(&web, range).await {
        Ok((_, _, charts)) => {
            axum::Json(serde_json::json!({ "range": name, "charts": charts })).into_response()
        }
        Err(e) => fail(e),
    }
}

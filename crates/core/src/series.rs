//! A check's samples over time as charts draw them: equal spans, each with the mean time the
//! check took, the largest quantity it measured and the worst state seen. The monitor's
//! history writes them; the dashboard draws them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One span of a chart: what its samples had.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Where the span starts.
    pub at: DateTime<Utc>,
    /// The mean time the check took.
    pub mean_ms: f64,
    /// The largest quantity measured (queue size, percent used), if the check measures one.
    pub max_value: Option<f64>,
    /// The worst state seen (`OK`, `WARNING`, `UNKNOWN`, `CRITICAL`).
    pub worst: String,
    /// How many samples it holds.
    pub samples: u64,
}

/// One server's check over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// The server.
    pub server: String,
    /// The check.
    pub check: String,
    /// Its spans, oldest first.
    pub points: Vec<Point>,
}

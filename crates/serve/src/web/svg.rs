//! Charts drawn on the server as SVG: no script and no external resource, so they render
//! under the Content-Security-Policy and in any browser. One line per server and check,
//! broken where the history has no samples; spans with a CRITICAL sample marked red under the
//! axis.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use mailfleet_core::series::Point;

use super::charts::{Chart, Measure};
use super::page::esc;

const W: f64 = 760.0;
const H: f64 = 200.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// Line colours, told apart by most forms of colour blindness (Okabe and Ito).
const PALETTE: [&str; 8] = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#000000", "#f0e442",
];

/// The smallest of 1, 2, 5 times a power of ten at or above `x`.
fn nice_max(x: f64) -> f64 {
    if x <= 0.0 || !x.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|v| *v >= x)
        .unwrap_or(10.0 * p)
}

fn y_of(p: &Point, m: Measure) -> Option<f64> {
    match m {
        Measure::Time => Some(p.mean_ms),
        Measure::Value => p.max_value,
    }
}

/// `c` over `since..until` cut in `spans` equal spans, as an SVG figure with its legend.
pub(super) fn chart(c: &Chart, since: DateTime<Utc>, until: DateTime<Utc>, spans: u32) -> String {
    let mut out = format!(
        "<figure class=\"chart\" data-family=\"{}\" data-series=\"{}\"><figcaption>{} ({})</figcaption>",
        esc(c.family),
        c.series.len(),
        esc(c.title),
        esc(c.unit)
    );
    let top = c
        .series
        .iter()
        .flat_map(|s| s.points.iter().filter_map(|p| y_of(p, c.measure)))
        .fold(0.0f64, f64::max);
    if c.series.is_empty() {
        out.push_str("<p class=\"empty\">No samples in this range.</p></figure>");
        return out;
    }
    let top = nice_max(top);
    let (t0, t1) = (since.timestamp() as f64, until.timestamp() as f64);
    let span = (t1 - t0).max(1.0) / f64::from(spans.max(1));
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let x = |t: f64| LEFT + (t - t0).clamp(0.0, t1 - t0) / (t1 - t0).max(1.0) * pw;
    let y = |v: f64| TOP + ph - (v / top).clamp(0.0, 1.0) * ph;
    let _ = write!(
        out,
        "<svg viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{}\">",
        esc(c.title)
    );
    for frac in [0.0, 0.5, 1.0] {
        let yy = y(top * frac);
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"11\">{}</text>",
            W - RIGHT,
            LEFT - 4.0,
            yy + 4.0,
            label(top * frac)
        );
    }
    for (t, anchor) in [(since, "start"), (until, "end")] {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"{anchor}\" font-size=\"11\">{}</text>",
            x(t.timestamp() as f64),
            H - 6.0,
            t.format("%m-%d %H:%M")
        );
    }
    for (i, s) in c.series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let mut runs: Vec<String> = Vec::new();
        let mut last: Option<f64> = None;
        for p in &s.points {
            let t = p.at.timestamp() as f64 + span / 2.0;
            if p.worst == "CRITICAL" {
                let _ = write!(
                    out,
                    "<rect class=\"critical\" x=\"{:.1}\" y=\"{}\" width=\"{:.1}\" height=\"3\" fill=\"#b00\"/>",
                    x(p.at.timestamp() as f64),
                    TOP + ph + 1.0,
                    (pw / f64::from(spans.max(1))).max(1.0)
                );
            }
            let Some(v) = y_of(p, c.measure) else {
                last = None;
                continue;
            };
            // A gap of more than two spans is time without samples: the line breaks.
            if last.is_none_or(|l| t - l > 2.5 * span) {
                runs.push(String::new());
            }
            if let Some(r) = runs.last_mut() {
                let _ = write!(r, "{:.1},{:.1} ", x(t), y(v));
            }
            last = Some(t);
        }
        for r in runs {
            // A lone sample draws no line: a dot shows it.
            if let [(cx, cy)] = r
                .trim_end()
                .split(' ')
                .filter_map(|p| p.split_once(','))
                .collect::<Vec<_>>()[..]
            {
                let _ = write!(
                    out,
                    "<circle cx=\"{cx}\" cy=\"{cy}\" r=\"2\" fill=\"{colour}\"><title>{} {}</title></circle>",
                    esc(&s.server),
                    esc(&s.check)
                );
                continue;
            }
            let _ = write!(
                out,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"><title>{} {}</title></polyline>",
                r.trim_end(),
                esc(&s.server),
                esc(&s.check)
            );
        }
    }
    out.push_str("</svg><ul class=\"legend\">");
    for (i, s) in c.series.iter().enumerate() {
        let _ = write!(
            out,
            "<li><svg width=\"10\" height=\"10\"><rect width=\"10\" height=\"10\" fill=\"{}\"/></svg> {} {}</li>",
            PALETTE[i % PALETTE.len()],
            esc(&s.server),
            esc(&s.check)
        );
    }
    out.push_str("</ul></figure>");
    out
}

fn label(v: f64) -> String {
    if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailfleet_core::series::Series;

    fn point(at: i64, ms: f64, worst: &str) -> Point {
        Point {
            at: DateTime::from_timestamp(at, 0).unwrap(),
            mean_ms: ms,
            max_value: None,
            worst: worst.into(),
            samples: 1,
        }
    }

    #[test]
    fn lines_break_at_gaps_and_critical_spans_are_marked() {
        let since = DateTime::from_timestamp(0, 0).unwrap();
        let until = DateTime::from_timestamp(1200, 0).unwrap();
        let c = Chart {
            title: "IMAP <login>",
            family: "imap",
            measure: Measure::Time,
            unit: "ms",
            series: vec![Series {
                server: "store1".into(),
                check: "imap".into(),
                // Spans of 10 s: 0, 10, 20, then nothing until 600.
                points: vec![
                    point(0, 5.0, "OK"),
                    point(10, 7.0, "OK"),
                    point(20, 30.0, "CRITICAL"),
                    point(600, 6.0, "OK"),
                ],
            }],
        };
        let svg = chart(&c, since, until, 120);
        assert_eq!(svg.matches("<polyline").count(), 1, "{svg}");
        assert_eq!(
            svg.matches("<circle").count(),
            1,
            "the lone sample at 600 s: {svg}"
        );
        assert_eq!(svg.matches("class=\"critical\"").count(), 1, "{svg}");
        assert!(
            svg.contains("IMAP &lt;login&gt;"),
            "the title is escaped: {svg}"
        );
        assert!(svg.contains(">50</text>"), "the axis tops at 50 ms: {svg}");
        let empty = Chart {
            series: vec![],
            ..c
        };
        assert!(chart(&empty, since, until, 120).contains("No samples"));
    }

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(3.2), 5.0);
        assert_eq!(nice_max(17.0), 20.0);
        assert_eq!(nice_max(100.0), 100.0);
        assert_eq!(nice_max(101.0), 200.0);
    }
}

//! The report as one self-contained HTML page: inline SVG charts, no script, no network.

use std::fmt::Write;

use crate::report::Report;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A number as a person reads it: `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A round step for about `lines` gridlines up to `max`: 1, 2 or 5 times a power of ten.
fn grid_step(max: u64, lines: u64) -> u64 {
    let raw = (max / lines.max(1)).max(1);
    let mut p = 1u64;
    while p.saturating_mul(10) <= raw {
        p *= 10;
    }
    [1, 2, 5, 10]
        .into_iter()
        .map(|m| m * p)
        .find(|s| *s >= raw)
        .unwrap_or(10 * p)
}

/// Chart geometry: the plot area inside the picture.
const WIDTH: f64 = 760.0;
const PLOT_H: f64 = 200.0;
const LEFT: f64 = 64.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = 26.0;
/// Width of one character of the 11-px labels, to keep labels from overlapping.
const CHAR_W: f64 = 6.6;

/// A vertical bar chart of labelled values, with gridlines and their values on the left and
/// as many labels below as fit upright without overlapping.
fn bars(title: &str, data: &[(String, u64)]) -> String {
    let mut s = format!("<h2>{}</h2>", esc(title));
    if data.is_empty() {
        s.push_str("<p>No data.</p>");
        return s;
    }
    let max = data.iter().map(|d| d.1).max().unwrap_or(1).max(1);
    let step = grid_step(max, 4);
    let top_value = max.div_ceil(step) * step;
    let height = TOP + PLOT_H + BOTTOM;
    let y_of = |v: u64| TOP + PLOT_H - (v as f64 / top_value as f64) * PLOT_H;
    let _ = write!(
        s,
        "<svg width=\"{WIDTH}\" height=\"{height}\" role=\"img\" aria-label=\"{}\" font-family=\"sans-serif\">",
        esc(title)
    );
    let mut v = 0;
    while v <= top_value {
        let y = y_of(v);
        let _ = write!(
            s,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{WIDTH}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            y + 4.0,
            thousands(v)
        );
        v += step;
    }
    let bw = (WIDTH - LEFT) / data.len() as f64;
    let widest = data.iter().map(|d| d.0.chars().count()).max().unwrap_or(1) as f64;
    // Every n-th label, so that each has room for its text and a gap.
    let every = ((widest * CHAR_W + 8.0) / bw).ceil().max(1.0) as usize;
    for (i, (label, v)) in data.iter().enumerate() {
        let x = LEFT + i as f64 * bw;
        let y = y_of(*v);
        let _ = write!(
            s,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#3b7dd8\"><title>{}: {}</title></rect>",
            (bw - 1.0).max(1.0),
            TOP + PLOT_H - y,
            esc(label),
            thousands(*v)
        );
        if i % every == 0 {
            // Centred under its bar, but never past either edge of the picture.
            let half = label.chars().count() as f64 * CHAR_W / 2.0;
            let cx = (x + bw / 2.0).clamp(LEFT + half, WIDTH - half);
            let _ = write!(
                s,
                "<text class=\"label\" x=\"{cx:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
                TOP + PLOT_H + 16.0,
                esc(label)
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// A horizontal bar per funnel stage.
fn funnel(r: &Report) -> String {
    let f = &r.funnel;
    let stages = [
        ("connections", f.connections),
        ("rejected by DNSBL", f.dnsbl_rejected),
        ("rejected otherwise", f.other_rejected),
        ("accepted", f.accepted),
        ("scanned", f.scanned),
        ("spam", f.spam),
        ("clean", f.clean),
    ];
    let max = stages.iter().map(|s| s.1).max().unwrap_or(1).max(1) as f64;
    let mut s = String::from(
        "<h2>Spam funnel</h2><svg width=\"760\" height=\"180\" role=\"img\" aria-label=\"spam funnel\">",
    );
    for (i, (name, v)) in stages.iter().enumerate() {
        let y = i as f64 * 24.0;
        let bw = (*v as f64 / max) * 560.0;
        let _ = write!(
            s,
            "<text x=\"0\" y=\"{:.0}\" font-size=\"12\">{name}</text><rect x=\"150\" y=\"{y:.0}\" width=\"{bw:.1}\" height=\"18\" fill=\"#d8703b\"/><text x=\"{:.0}\" y=\"{:.0}\" font-size=\"12\">{}</text>",
            y + 14.0,
            155.0 + bw,
            y + 14.0,
            thousands(*v)
        );
    }
    s.push_str("</svg>");
    s
}

/// Renders the page.
pub fn render(r: &Report) -> String {
    let mut hourly = [0u64; 24];
    let mut daily = std::collections::BTreeMap::<String, u64>::new();
    for m in &r.machines {
        for (h, n) in m.by_hour.iter().enumerate() {
            hourly[h] += n;
        }
        for (d, io) in &m.per_day {
            *daily.entry(d.clone()).or_insert(0) += io.received;
        }
    }
    let hourly: Vec<(String, u64)> = hourly
        .iter()
        .enumerate()
        .map(|(h, n)| (format!("{h:02}h"), *n))
        .collect();
    let daily: Vec<(String, u64)> = daily.into_iter().collect();
    let sizes: Vec<(String, u64)> = r.sizes.iter().map(|c| (human(c.upto), c.count)).collect();
    let t = &r.totals;
    let mut s = String::from(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>mailfleet report</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}th{background:#eee}td:first-child{text-align:left}</style></head><body><h1>mailfleet report</h1>",
    );
    s.push_str("<h2>Totals</h2><table>");
    for (k, v) in [
        ("received", t.received),
        ("delivered", t.delivered),
        ("forwarded", t.forwarded),
        ("deferred", t.deferred),
        ("bounced", t.bounced),
        ("rejected", t.rejected),
        ("held", t.held),
        ("discarded", t.discarded),
        ("bytes received", t.bytes_received),
        ("bytes delivered", t.bytes_delivered),
        ("senders", t.senders),
        ("recipients", t.recipients),
    ] {
        let _ = write!(s, "<tr><td>{k}</td><td>{}</td></tr>", thousands(v));
    }
    s.push_str("</table>");
    s.push_str(&bars("Messages received per hour of day", &hourly));
    s.push_str(&bars("Messages received per day", &daily));
    s.push_str(&bars("Message sizes (up to)", &sizes));
    s.push_str(&funnel(r));
    s.push_str("<h2>Machines</h2><table><tr><th>host</th><th>received</th><th>delivered</th><th>median size</th><th>recipients/msg</th><th>deferral rate</th><th>bounce rate</th></tr>");
    for m in &r.machines {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.1}%</td><td>{:.1}%</td></tr>",
            esc(&m.host),
            thousands(m.received),
            thousands(m.delivered),
            thousands(m.sizes.median),
            m.recipients_per_message,
            m.deferral_rate * 100.0,
            m.bounce_rate * 100.0
        );
    }
    s.push_str("</table>");
    if !r.anomalies.is_empty() {
        s.push_str("<h2>Anomalies</h2><table><tr><th>day</th><th>account</th><th>kind</th><th>value</th><th>usual</th></tr>");
        for a in &r.anomalies {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td></tr>",
                esc(&a.day),
                esc(&a.account),
                esc(&a.kind),
                thousands(a.value),
                a.baseline
            );
        }
        s.push_str("</table>");
    }
    let _ = writeln!(
        s,
        "<p>{} lines read, {} not understood.</p></body></html>",
        thousands(r.input.lines),
        thousands(r.unparsed.total)
    );
    s
}

fn human(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{}M", n >> 20),
        n if n >= 1 << 10 => format!("{}K", n >> 10),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_grid_steps() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(3_470_147_700), "3,470,147,700");
        assert_eq!(grid_step(1688, 4), 500);
        assert_eq!(grid_step(11_663, 4), 5000);
        assert_eq!(grid_step(3, 4), 1);
        assert_eq!(grid_step(100, 4), 50);
    }
}

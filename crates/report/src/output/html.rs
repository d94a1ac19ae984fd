//! The report as one self-contained HTML page: inline SVG charts, no script, no network.

use std::fmt::Write;

use crate::report::Report;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A vertical bar chart of labelled values.
fn bars(title: &str, data: &[(String, u64)]) -> String {
    let mut s = format!("<h2>{}</h2>", esc(title));
    if data.is_empty() {
        s.push_str("<p>No data.</p>");
        return s;
    }
    let max = data.iter().map(|d| d.1).max().unwrap_or(1).max(1) as f64;
    let (w, h, pad) = (760.0, 200.0, 30.0);
    let bw = (w - pad) / data.len() as f64;
    let _ = write!(
        s,
        "<svg width=\"{w}\" height=\"{}\" role=\"img\" aria-label=\"{}\">",
        h + 40.0,
        esc(title)
    );
    let step = (data.len() / 24).max(1);
    for (i, (label, v)) in data.iter().enumerate() {
        let bh = (*v as f64 / max) * h;
        let x = pad + i as f64 * bw;
        let _ = write!(
            s,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#3b7dd8\"><title>{}: {v}</title></rect>",
            h - bh,
            (bw - 1.0).max(1.0),
            esc(label)
        );
        if i % step == 0 {
            let _ = write!(
                s,
                "<text x=\"{x:.1}\" y=\"{}\" font-size=\"9\" transform=\"rotate(45 {x:.1} {})\">{}</text>",
                h + 12.0,
                h + 12.0,
                esc(label)
            );
        }
    }
    let _ = write!(
        s,
        "<text x=\"0\" y=\"10\" font-size=\"10\">{}</text></svg>",
        max as u64
    );
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
            "<text x=\"0\" y=\"{:.0}\" font-size=\"12\">{name}</text><rect x=\"150\" y=\"{y:.0}\" width=\"{bw:.1}\" height=\"18\" fill=\"#d8703b\"/><text x=\"{:.0}\" y=\"{:.0}\" font-size=\"12\">{v}</text>",
            y + 14.0,
            155.0 + bw,
            y + 14.0
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
        let _ = write!(s, "<tr><td>{k}</td><td>{v}</td></tr>");
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
            m.received,
            m.delivered,
            m.sizes.median,
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
                a.value,
                a.baseline
            );
        }
        s.push_str("</table>");
    }
    let _ = writeln!(
        s,
        "<p>{} lines read, {} not understood.</p></body></html>",
        r.input.lines, r.unparsed.total
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

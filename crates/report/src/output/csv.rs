//! The report as CSV files in a directory, one file per table.

use std::path::{Path, PathBuf};

use crate::report::Report;

/// Why writing CSV failed.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct CsvError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

fn write(
    dir: &Path,
    name: &str,
    header: &[&str],
    rows: Vec<Vec<String>>,
) -> Result<PathBuf, CsvError> {
    let path = dir.join(name);
    let err = |e: &dyn std::fmt::Display| CsvError {
        path: path.clone(),
        message: e.to_string(),
    };
    let mut w = ::csv::Writer::from_path(&path).map_err(|e| err(&e))?;
    w.write_record(header).map_err(|e| err(&e))?;
    for r in rows {
        w.write_record(&r).map_err(|e| err(&e))?;
    }
    w.flush().map_err(|e| err(&e))?;
    Ok(path)
}

/// Writes `totals.csv`, `machines.csv`, `machine_days.csv`, `users.csv`, `funnel.csv`,
/// `funnel_lists.csv`, `funnel_rules.csv`, `anomalies.csv` and `unparsed.csv`.
pub fn write_dir(r: &Report, dir: &Path) -> Result<Vec<PathBuf>, CsvError> {
    std::fs::create_dir_all(dir).map_err(|e| CsvError {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let totals = serde_json::to_value(&r.totals).unwrap_or_default();
    let mut rows = Vec::new();
    if let Some(map) = totals.as_object() {
        for (k, v) in map {
            rows.push(vec![k.clone(), v.to_string()]);
        }
    }
    let mut out = vec![write(dir, "totals.csv", &["name", "value"], rows)?];
    let machines = r
        .machines
        .iter()
        .map(|m| {
            vec![
                m.host.clone(),
                m.accounts.to_string(),
                m.received.to_string(),
                m.delivered.to_string(),
                m.sizes.min.to_string(),
                m.sizes.median.to_string(),
                m.sizes.max.to_string(),
                format!("{:.1}", m.sizes.average),
                format!("{:.3}", m.recipients_per_message),
                m.max_recipients.to_string(),
                format!("{:.4}", m.deferral_rate),
                format!("{:.4}", m.bounce_rate),
                m.peak_hour.as_ref().map_or(String::new(), |p| p.0.clone()),
                m.peak_day.as_ref().map_or(String::new(), |p| p.0.clone()),
            ]
        })
        .collect();
    out.push(write(
        dir,
        "machines.csv",
        &[
            "host",
            "accounts",
            "received",
            "delivered",
            "size_min",
            "size_median",
            "size_max",
            "size_average",
            "recipients_per_message",
            "max_recipients",
            "deferral_rate",
            "bounce_rate",
            "peak_hour",
            "peak_day",
        ],
        machines,
    )?);
    let days = r
        .machines
        .iter()
        .flat_map(|m| {
            m.per_day.iter().map(|(d, io)| {
                vec![
                    m.host.clone(),
                    d.clone(),
                    io.received.to_string(),
                    io.delivered.to_string(),
                ]
            })
        })
        .collect();
    out.push(write(
        dir,
        "machine_days.csv",
        &["host", "day", "in", "out"],
        days,
    )?);
    let users = r
        .users
        .iter()
        .map(|u| {
            vec![
                u.account.clone(),
                u.sent.to_string(),
                u.sent_internal.to_string(),
                u.sent_external.to_string(),
                u.bytes_sent.to_string(),
                u.received.to_string(),
                u.bytes_received.to_string(),
                u.distinct_recipients.to_string(),
                u.logins.get("imap").copied().unwrap_or(0).to_string(),
                u.logins.get("pop3").copied().unwrap_or(0).to_string(),
                u.failed_logins.to_string(),
            ]
        })
        .collect();
    out.push(write(
        dir,
        "users.csv",
        &[
            "account",
            "sent",
            "sent_internal",
            "sent_external",
            "bytes_sent",
            "received",
            "bytes_received",
            "distinct_recipients",
            "imap_logins",
            "pop3_logins",
            "failed_logins",
        ],
        users,
    )?);
    let f = &r.funnel;
    let stages = [
        ("connections", f.connections),
        ("dnsbl_rejected", f.dnsbl_rejected),
        ("other_rejected", f.other_rejected),
        ("accepted", f.accepted),
        ("whitelisted", f.whitelisted),
        ("blacklisted", f.blacklisted),
        ("too_large", f.too_large),
        ("not_scanned", f.not_scanned),
        ("scanned", f.scanned),
        ("clean", f.clean),
        ("spam", f.spam),
    ];
    out.push(write(
        dir,
        "funnel.csv",
        &["stage", "count"],
        stages
            .iter()
            .map(|(k, v)| vec![k.to_string(), v.to_string()])
            .collect(),
    )?);
    let mut lists: Vec<Vec<String>> = f
        .rejected_by_list
        .iter()
        .map(|(l, n)| vec![l.clone(), "rejected".into(), n.to_string(), String::new()])
        .collect();
    lists.extend(f.listed_by.iter().map(|(l, h)| {
        vec![
            l.clone(),
            "listed".into(),
            h.hits.to_string(),
            h.unique.to_string(),
        ]
    }));
    out.push(write(
        dir,
        "funnel_lists.csv",
        &["list", "what", "hits", "unique"],
        lists,
    )?);
    out.push(write(
        dir,
        "funnel_rules.csv",
        &["rule", "hits", "unique"],
        f.rules
            .iter()
            .map(|(k, h)| vec![k.clone(), h.hits.to_string(), h.unique.to_string()])
            .collect(),
    )?);
    out.push(write(
        dir,
        "anomalies.csv",
        &["account", "kind", "day", "value", "baseline"],
        r.anomalies
            .iter()
            .map(|a| {
                vec![
                    a.account.clone(),
                    a.kind.clone(),
                    a.day.clone(),
                    a.value.to_string(),
                    format!("{:.1}", a.baseline),
                ]
            })
            .collect(),
    )?);
    out.push(write(
        dir,
        "unparsed.csv",
        &["kind", "lines"],
        r.unparsed
            .by_kind
            .iter()
            .map(|(k, n)| vec![k.clone(), n.to_string()])
            .collect(),
    )?);
    Ok(out)
}

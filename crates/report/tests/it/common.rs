//! Helpers: run pflogsumm and read its grand totals.

use std::collections::HashMap;
use std::path::Path;

/// pflogsumm's grand totals by our field names, each as (value, unit): pflogsumm prints
/// values over 512k in k (and over 512m in m), truncated.
pub(crate) fn pflogsumm(files: &[&Path]) -> HashMap<&'static str, (u64, char)> {
    let out = std::process::Command::new("pflogsumm")
        .args(files)
        .output()
        .expect("pflogsumm runs (scripts/install-stack installs it)");
    assert!(
        out.status.success(),
        "pflogsumm failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let names = [
        ("received", "received"),
        ("delivered", "delivered"),
        ("forwarded", "forwarded"),
        ("deferred", "deferred"),
        ("bounced", "bounced"),
        ("rejected", "rejected"),
        ("reject warnings", "reject_warnings"),
        ("held", "held"),
        ("discarded", "discarded"),
        ("bytes received", "bytes_received"),
        ("bytes delivered", "bytes_delivered"),
        ("senders", "senders"),
        ("sending hosts/domains", "sending_domains"),
        ("recipients", "recipients"),
        ("recipient hosts/domains", "recipient_domains"),
    ];
    let mut totals = HashMap::new();
    for line in text.lines().take_while(|l| !l.starts_with("Per-")) {
        let t = line.trim();
        let Some((num, rest)) = t.split_once(char::is_whitespace) else {
            continue;
        };
        let (digits, unit) = match num.strip_suffix(['k', 'm']) {
            Some(d) => (d, num.chars().last().unwrap_or(' ')),
            None => (num, ' '),
        };
        let Ok(v) = digits.parse::<u64>() else {
            continue;
        };
        let rest = rest.trim();
        // "4   deferred  (26  deferrals)", "22   rejected (64%)"
        let label = rest.split(" (").next().unwrap_or(rest).trim();
        if let Some((_, field)) = names.iter().find(|(n, _)| *n == label) {
            totals.insert(*field, (v, unit));
        }
        if label == "deferred"
            && let Some(d) = rest
                .split('(')
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
        {
            let d = d.trim_end_matches(['k', 'm']);
            totals.insert("deferrals", (d.parse().unwrap_or(0), ' '));
        }
    }
    if !totals.contains_key("deferrals") {
        totals.insert("deferrals", (0, ' '));
    }
    totals
}

/// Our value as pflogsumm would print it.
pub(crate) fn as_pflogsumm(v: u64, unit: char) -> u64 {
    match unit {
        'k' => v / 1024,
        'm' => v / (1024 * 1024),
        _ => v,
    }
}

/// Our totals as a map of field to value.
pub(crate) fn ours(t: &mailfleet_report::report::Totals) -> HashMap<String, u64> {
    let v = serde_json::to_value(t).expect("totals serialise");
    v.as_object()
        .expect("an object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().expect("integer field")))
        .collect()
}

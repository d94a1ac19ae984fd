//! The report as text tables for a terminal.

use std::fmt::Write;

use crate::report::{Report, User};

fn pct(n: f64) -> String {
    format!("{:.1}%", n * 100.0)
}

/// Renders the report; with `user`, that account's profile in full instead of the user table.
pub fn render(r: &Report, user: Option<&str>) -> String {
    let mut s = String::new();
    let t = &r.totals;
    let _ = writeln!(s, "Grand totals (counted as pflogsumm counts)");
    for (name, v) in [
        ("received", t.received),
        ("delivered", t.delivered),
        ("forwarded", t.forwarded),
        ("deferred", t.deferred),
        ("deferrals", t.deferrals),
        ("bounced", t.bounced),
        ("rejected", t.rejected),
        ("reject warnings", t.reject_warnings),
        ("held", t.held),
        ("discarded", t.discarded),
        ("bytes received", t.bytes_received),
        ("bytes delivered", t.bytes_delivered),
        ("senders", t.senders),
        ("sending hosts/domains", t.sending_domains),
        ("recipients", t.recipients),
        ("recipient hosts/domains", t.recipient_domains),
    ] {
        let _ = writeln!(s, "  {v:>12}  {name}");
    }

    let _ = writeln!(s, "\nMachines");
    let _ = writeln!(
        s,
        "  {:20} {:>8} {:>9} {:>8} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7}  peak hour",
        "HOST",
        "ACCOUNTS",
        "RECEIVED",
        "DELIVER",
        "SIZE MIN",
        "MEDIAN",
        "MAX",
        "RCPT/M",
        "DEFER",
        "BOUNCE"
    );
    for m in &r.machines {
        let peak = m
            .peak_hour
            .as_ref()
            .map_or("-".to_string(), |(h, n)| format!("{h} ({n})"));
        let _ = writeln!(
            s,
            "  {:20} {:>8} {:>9} {:>8} {:>9} {:>9} {:>9} {:>7.2} {:>7} {:>7}  {peak}",
            m.host,
            m.accounts,
            m.received,
            m.delivered,
            m.sizes.min,
            m.sizes.median,
            m.sizes.max,
            m.recipients_per_message,
            pct(m.deferral_rate),
            pct(m.bounce_rate)
        );
    }

    match user {
        Some(u) => match r.users.iter().find(|x| x.account.eq_ignore_ascii_case(u)) {
            Some(x) => user_detail(&mut s, x),
            None => {
                let _ = writeln!(s, "\nNo activity for {u} in these logs.");
            }
        },
        None => {
            let _ = writeln!(s, "\nUsers (top 25 by messages sent, then received)");
            let _ = writeln!(
                s,
                "  {:32} {:>6} {:>8} {:>8} {:>8} {:>7} {:>7} {:>6}",
                "ACCOUNT", "SENT", "INTERNAL", "EXTERNAL", "RECEIVED", "LOGINS", "FAILED", "PEERS"
            );
            let mut users: Vec<&User> = r.users.iter().collect();
            users.sort_by(|a, b| {
                (b.sent, b.received)
                    .cmp(&(a.sent, a.received))
                    .then_with(|| a.account.cmp(&b.account))
            });
            for x in users.iter().take(25) {
                let logins: u64 = x.logins.values().sum();
                let _ = writeln!(
                    s,
                    "  {:32} {:>6} {:>8} {:>8} {:>8} {:>7} {:>7} {:>6}",
                    x.account,
                    x.sent,
                    x.sent_internal,
                    x.sent_external,
                    x.received,
                    logins,
                    x.failed_logins,
                    x.distinct_recipients
                );
            }
            if r.users.len() > 25 {
                let _ = writeln!(
                    s,
                    "  ... {} more (--json or --csv for all, --user ADDR for one)",
                    r.users.len() - 25
                );
            }
        }
    }

    let f = &r.funnel;
    let _ = writeln!(s, "\nSpam funnel");
    for (name, v) in [
        ("connections", f.connections),
        ("rejected by DNSBL", f.dnsbl_rejected),
        ("rejected otherwise", f.other_rejected),
        ("accepted", f.accepted),
        ("whitelisted", f.whitelisted),
        ("blacklisted", f.blacklisted),
        ("too large to scan", f.too_large),
        ("not scanned", f.not_scanned),
        ("scanned", f.scanned),
        ("  clean", f.clean),
        ("  spam", f.spam),
    ] {
        let _ = writeln!(s, "  {v:>12}  {name}");
    }
    for (list, n) in &f.rejected_by_list {
        let _ = writeln!(s, "  {n:>12}  rejected by {list}");
    }
    for (list, h) in &f.listed_by {
        let _ = writeln!(
            s,
            "  {:>12}  listed by {list} ({} unique)",
            h.hits, h.unique
        );
    }
    let mut rules: Vec<_> = f.rules.iter().collect();
    rules.sort_by(|a, b| b.1.hits.cmp(&a.1.hits).then_with(|| a.0.cmp(b.0)));
    for (rule, h) in rules.iter().take(20) {
        let _ = writeln!(s, "  {:>12}  rule {rule} ({} unique)", h.hits, h.unique);
    }

    if !r.anomalies.is_empty() {
        let _ = writeln!(s, "\nAnomalies");
        for a in &r.anomalies {
            let _ = writeln!(
                s,
                "  {} {} {}: {} (usually {:.0})",
                a.day, a.account, a.kind, a.value, a.baseline
            );
        }
    }
    let _ = writeln!(
        s,
        "\nInput: {} lines, {} bytes from {} file(s); {} lines not understood",
        r.input.lines,
        r.input.bytes,
        r.input.files.len(),
        r.unparsed.total
    );
    for (kind, n) in &r.unparsed.by_kind {
        let _ = writeln!(s, "  {n:>12}  {kind}");
    }
    for e in &r.input.errors {
        let _ = writeln!(s, "  error: {e}");
    }
    s
}

fn user_detail(s: &mut String, u: &User) {
    let _ = writeln!(s, "\nUser {}", u.account);
    let _ = writeln!(
        s,
        "  sent {} messages ({} bytes): {} internal, {} external recipients, {} distinct",
        u.sent, u.bytes_sent, u.sent_internal, u.sent_external, u.distinct_recipients
    );
    let _ = writeln!(
        s,
        "  received {} messages ({} bytes)",
        u.received, u.bytes_received
    );
    let logins: Vec<String> = u.logins.iter().map(|(p, n)| format!("{p} {n}")).collect();
    let _ = writeln!(
        s,
        "  logins: {} ; failed: {}",
        if logins.is_empty() {
            "none".into()
        } else {
            logins.join(", ")
        },
        u.failed_logins
    );
    for (ip, n) in &u.login_addresses {
        let _ = writeln!(s, "    from {ip}: {n}");
    }
    let hours: Vec<String> = u
        .active_hours
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(h, n)| format!("{h:02}h:{n}"))
        .collect();
    let _ = writeln!(s, "  active hours: {}", hours.join(" "));
}

//! How `mailfleet policy ...` prints its results for a person (`--json` prints the values).

use mailfleet_policy::admin::Status;
use mailfleet_policy::counters::Held;

pub(crate) fn print_held(held: &[Held]) {
    if held.is_empty() {
        println!("no mail held");
    }
    for h in held {
        let at = chrono::DateTime::from_timestamp_millis(h.at_ms as i64).unwrap_or_default();
        println!(
            "{:<6} {:<12} {:<32} held {}  {} recipients, {} bytes",
            h.mta.as_deref().unwrap_or("-"),
            h.queue_id,
            h.key,
            at.format("%Y-%m-%d %H:%M:%S"),
            h.usage.recipients,
            h.usage.bytes
        );
    }
}

pub(crate) fn print_status(s: &Status) {
    println!(
        "window {} s; {} senders active, {} messages held, {} accounts blocked",
        s.window_secs,
        s.senders.len(),
        s.held,
        s.blocked.len()
    );
    if !s.senders.is_empty() {
        println!(
            "{:<32} {:>9} {:>6} {:>10} {:>12}",
            "ACCOUNT", "MESSAGES", "LIMIT", "RECIPIENTS", "BYTES"
        );
        for x in s.senders.iter().take(20) {
            println!(
                "{:<32} {:>9} {:>6} {:>10} {:>12}",
                x.account,
                x.usage.messages,
                x.limit_messages.map_or("-".into(), |l| l.to_string()),
                x.usage.recipients,
                x.usage.bytes
            );
        }
    }
    for b in &s.blocked {
        println!("blocked: {} since {}: {}", b.address, b.since, b.reason);
    }
    for d in &s.dnsbl {
        println!(
            "dnsbl {}: {} hits, {} distinct clients",
            d.zone, d.hits, d.unique
        );
    }
}

//! How `upgrade` results look on a terminal.

use mailfleet_upgrade::Plan;

/// Each step with its reason, gates and start; warnings at the end.
pub(crate) fn plan(p: &Plan) {
    let tz: chrono_tz::Tz = p.timezone.parse().unwrap_or(chrono_tz::UTC);
    let windows = if p.windows.is_empty() {
        "any time".to_string()
    } else {
        p.windows.join("; ")
    };
    let packages = if p.packages.is_empty() {
        "every update offered".to_string()
    } else {
        p.packages.join(", ")
    };
    println!(
        "upgrade plan: {} servers, {packages}; windows {windows} ({})",
        p.steps.len(),
        p.timezone
    );
    for s in &p.steps {
        let group = s
            .group
            .as_deref()
            .map(|g| format!(", group {g}"))
            .unwrap_or_default();
        println!(
            "{:>3}. {} ({:?}{group}{}) from {}",
            s.n,
            s.server,
            s.rank,
            if s.canary { ", canary" } else { "" },
            s.start.with_timezone(&tz).format("%a %Y-%m-%d %H:%M %Z")
        );
        println!("     why: {}", s.why);
        for w in &s.waits {
            println!("     waits for: {w}");
        }
        for g in &s.before {
            println!("     before: {g}");
        }
        if let Some(d) = &s.drain {
            println!("     drain: {d}");
        }
        for g in &s.after {
            println!("     after: {g}");
        }
    }
    println!(
        "ends at the earliest {}",
        p.ends.with_timezone(&tz).format("%a %Y-%m-%d %H:%M %Z")
    );
    for w in &p.warnings {
        println!("warning: {w}");
    }
}

//! How `upgrade` results look on a terminal.

use mailfleet_upgrade::Plan;
use mailfleet_upgrade::command::Holds;
use mailfleet_upgrade::holds::Format;

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

/// The snippet, then each server's reboot time in its tool's words.
pub(crate) fn holds(h: &Holds) {
    print!("{}", h.snippet);
    println!(
        "\n// Automatic reboots, staggered in upgrade order ({} min slots, {}):",
        h.slot_secs / 60,
        h.timezone
    );
    for r in &h.reboots {
        let at = r.at.format("%H:%M");
        match h.format {
            Format::Apt => println!(
                "// {}: Unattended-Upgrade::Automatic-Reboot-Time \"{at}\";",
                r.server
            ),
            Format::Dnf | Format::Yum => println!(
                "# {}: reboot window from {at} for {} min",
                r.server,
                h.slot_secs / 60
            ),
        }
    }
    if let Some(w) = &h.warning {
        println!("warning: {w}");
    }
}

/// Per server: what would slip past the holds.
pub(crate) fn checked(v: &[mailfleet_upgrade::check::ServerCheck]) {
    use mailfleet_upgrade::check::Finding;
    for c in v {
        if let Some(e) = &c.error {
            println!("{}: CHECK FAILED: {e}", c.server);
            continue;
        }
        if c.findings.is_empty() {
            println!("{}: {} updates, none past the holds", c.server, c.upgrades);
        }
        for f in &c.findings {
            let v = |i: &mailfleet_upgrade::apt::Inst| {
                format!(
                    "{} {} -> {}",
                    i.package,
                    i.from.as_deref().unwrap_or("(new)"),
                    i.to
                )
            };
            match f {
                Finding::Held { inst } => {
                    println!(
                        "{}: held, update waiting for upgrade run: {}",
                        c.server,
                        v(inst)
                    )
                }
                Finding::DependsOnHeld { inst, held } => println!(
                    "{}: WOULD STILL UPGRADE: {}, which depends on held {}",
                    c.server,
                    v(inst),
                    held.join(", ")
                ),
            }
        }
    }
}

/// A run: its state, then each server's phase and the end of what it printed.
pub(crate) fn run(r: &mailfleet_upgrade::journal::RunRecord) {
    println!(
        "upgrade run {}: {}{}",
        r.id,
        r.state,
        r.reason
            .as_deref()
            .map(|w| format!(": {w}"))
            .unwrap_or_default()
    );
    for s in &r.steps {
        println!("{:>3}. {:<12} {}", s.n, s.server, s.phase.as_str());
        if let Some(e) = &s.error {
            println!("     HALTED: {e}");
        }
    }
}

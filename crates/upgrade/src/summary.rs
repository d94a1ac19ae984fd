//! The summary of a run the admins get at its end: each server with its time, the part the
//! package manager took, and what else it did (services stopped, restarted or started,
//! reboots done or left to the admin, waits), from the run's journal.

use crate::journal::RunRecord;

/// Lines of a step's output worth an admin's eye.
fn notable(line: &str) -> bool {
    [
        "stopped ",
        "restarted ",
        "started ",
        "not restarted",
        "rebooted",
        "waiting",
    ]
    .iter()
    .any(|p| line.starts_with(p))
        || line.contains("left to the admin")
}

/// The run's summary, one paragraph a server.
pub fn summary(run: &RunRecord) -> String {
    let mut text = String::new();
    for s in &run.steps {
        let took = match (s.started, s.ended) {
            (Some(a), Some(b)) => format!(" in {} s", b - a),
            _ => String::new(),
        };
        let update = s
            .timings
            .get("update")
            .map(|t| format!(" (the update {t:.1} s)"))
            .unwrap_or_default();
        text.push_str(&format!(
            "{}. {}: {}{took}{update}\n",
            s.n,
            s.server,
            s.phase.as_str()
        ));
        for line in s.output.lines().filter(|l| notable(l)) {
            text.push_str(&format!("   {line}\n"));
        }
        if let Some(e) = &s.error {
            text.push_str(&format!("   error: {e}\n"));
        }
    }
    text
}

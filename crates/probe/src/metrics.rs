//! Outcomes in the Prometheus text exposition format (names and labels after Prometheus'
//! conventions: base units, `_seconds`, one metric family per meaning).

use std::collections::HashMap;
use std::fmt::Write;

use crate::outcome::{Outcome, State};

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders one round of outcomes.
pub fn render(outcomes: &[Outcome]) -> String {
    let mut s = String::new();
    let families: [(&str, &str); 3] = [
        (
            "mailfleet_check_state",
            "State of the check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
        ),
        (
            "mailfleet_check_up",
            "Whether the check is OK (1) or not (0).",
        ),
        (
            "mailfleet_check_duration_seconds",
            "Time the whole check took.",
        ),
    ];
    for (name, help) in families {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge");
        for o in outcomes {
            let labels = format!(
                "server=\"{}\",check=\"{}\"",
                escape(&o.server),
                escape(&o.check)
            );
            let value = match name {
                "mailfleet_check_state" => f64::from(o.state.exit_code()),
                "mailfleet_check_up" => f64::from(u8::from(o.state == State::Ok)),
                _ => o.elapsed_ms / 1000.0,
            };
            let _ = writeln!(s, "{name}{{{labels}}} {value}");
        }
    }
    let name = "mailfleet_check_step_duration_seconds";
    let _ = writeln!(
        s,
        "# HELP {name} Time of each step of the check (a repeated step is numbered: connect_2).\n# TYPE {name} gauge"
    );
    for o in outcomes {
        let mut seen: HashMap<&str, u32> = HashMap::new();
        for step in &o.steps {
            let n = seen.entry(step.name).or_insert(0);
            *n += 1;
            let label = if *n == 1 {
                step.name.to_string()
            } else {
                format!("{}_{n}", step.name)
            };
            let _ = writeln!(
                s,
                "{name}{{server=\"{}\",check=\"{}\",step=\"{}\"}} {}",
                escape(&o.server),
                escape(&o.check),
                escape(&label),
                step.ms / 1000.0
            );
        }
    }
    s
}

//! A server's `services`, `reboot` and `update_command`: commands an upgrade runs on it, each
//! an argument vector as written (never a shell line mailfleet builds).

use std::collections::BTreeSet;
use std::path::Path;

use super::raw::RawService;
use super::validate::{Problems, resolve};
use crate::fleet::{Restart, Service};

/// One command: absent is none; present, it must name a program.
pub(crate) fn argv(
    raw: Option<Vec<String>>,
    key: &str,
    label: &str,
    p: &mut Problems,
) -> Vec<String> {
    let Some(v) = raw else {
        return Vec::new();
    };
    if v.first().is_none_or(|prog| prog.trim().is_empty()) {
        p.add(
            key,
            format!("names no program (give [\"program\", \"arg\", ...]) {label}"),
        );
        return Vec::new();
    }
    v
}

/// The `[[server.services]]` of one server.
pub(crate) fn services(
    raw: Option<Vec<RawService>>,
    base: &Path,
    key: &str,
    label: &str,
    p: &mut Problems,
) -> Vec<Service> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, s) in raw.into_iter().flatten().enumerate() {
        let key = format!("{key}.services[{i}]");
        if s.name.trim().is_empty() || s.name.contains(char::is_whitespace) {
            p.add(
                format!("{key}.name"),
                format!("{:?} is not a service name {label}", s.name),
            );
        } else if !seen.insert(s.name.clone()) {
            p.add(
                format!("{key}.name"),
                format!("{:?} is named twice {label}", s.name),
            );
        }
        let restart = match (s.restart, s.stop, s.start) {
            (Some(r), None, None) => {
                let commands = r.into_vec();
                if commands.is_empty() {
                    p.add(format!("{key}.restart"), format!("is empty {label}"));
                }
                Restart::Commands(
                    commands
                        .into_iter()
                        .enumerate()
                        .map(|(j, c)| argv(Some(c), &format!("{key}.restart[{j}]"), label, p))
                        .collect(),
                )
            }
            (None, Some(stop), Some(start)) => Restart::StopStart {
                stop: argv(Some(stop), &format!("{key}.stop"), label, p),
                start: argv(Some(start), &format!("{key}.start"), label, p),
            },
            _ => {
                p.add(
                    key.clone(),
                    format!("give either restart, or both stop and start {label}"),
                );
                Restart::Commands(Vec::new())
            }
        };
        let packages = s.packages.unwrap_or_default();
        if !packages.is_empty() && !matches!(restart, Restart::StopStart { .. }) {
            p.add(
                format!("{key}.packages"),
                format!(
                    "needs stop and start (a service stopped before the update is started after it) {label}"
                ),
            );
        }
        for (j, g) in packages.iter().enumerate() {
            if g.trim().is_empty() || g.contains(char::is_whitespace) {
                p.add(
                    format!("{key}.packages[{j}]"),
                    format!("{g:?} is not a package name or glob {label}"),
                );
            }
        }
        out.push(Service {
            name: s.name,
            pid_file: resolve(base, &s.pid_file),
            restart,
            packages,
        });
    }
    out
}

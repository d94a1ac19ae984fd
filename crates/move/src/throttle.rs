//! Waiting before a copy pass while the source or the target store is busier than
//! `[move] max_load` (the 1-minute load average per CPU, read on each store through its
//! access): a drain must not push a store its users are on into a slowdown. Only copy passes
//! before the lock wait; a locked account is never kept locked for a busy store.

use std::time::Duration;

use mailfleet_core::Server;
use mailfleet_remote::{Cmd, Reach};

use crate::error::MoveError;

/// A server's load as `/proc/loadavg` and its CPU count give it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// The 1-minute load average.
    pub one: f64,
    /// CPUs online.
    pub cpus: usize,
}

impl Load {
    /// The 1-minute load average per CPU.
    pub fn per_cpu(&self) -> f64 {
        self.one / self.cpus.max(1) as f64
    }

    /// Reads it from `/proc/loadavg` and `getconf _NPROCESSORS_ONLN` output.
    pub fn parse(loadavg: &str, cpus: &str) -> Result<Load, String> {
        let one = loadavg
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("/proc/loadavg: {:?} has no load average", loadavg.trim()))?;
        let cpus = cpus
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                format!(
                    "getconf _NPROCESSORS_ONLN: {:?} is no CPU count",
                    cpus.trim()
                )
            })?;
        Ok(Load { one, cpus })
    }
}

/// Why a pass must wait: the first of `loads` above `max` per CPU, named; `None`: go.
pub fn judge(loads: &[(&str, Load)], max: f64) -> Option<String> {
    loads
        .iter()
        .find(|(_, l)| l.per_cpu() > max)
        .map(|(name, l)| {
            format!(
                "{name} load {:.2} per CPU ({:.2} on {} CPUs) is above max_load {max:.2}",
                l.per_cpu(),
                l.one,
                l.cpus
            )
        })
}

/// Reads `server`'s load through its access.
pub async fn read(reach: &Reach, server: &Server, deadline: Duration) -> Result<Load, MoveError> {
    let run = |argv: &'static [&'static str]| async move {
        let cmd = Cmd::new(argv.iter().copied()).deadline(deadline);
        Ok::<_, MoveError>(
            reach
                .check(&server.name, &server.access, &cmd)
                .await?
                .stdout_text(),
        )
    };
    let (loadavg, cpus) = tokio::try_join!(
        run(&["cat", "/proc/loadavg"]),
        run(&["getconf", "_NPROCESSORS_ONLN"])
    )?;
    Load::parse(&loadavg, &cpus).map_err(|line| MoveError::Output {
        server: server.name.clone(),
        line,
    })
}

/// How often a waiting move looks again (the kernel updates the averages every 5 s).
pub const RECHECK: Duration = Duration::from_secs(5);

/// Waits until neither store is above `max` per CPU; `waiting` is told why each time it
/// waits, and `None` once it goes on after waiting.
pub async fn quiet(
    reach: &Reach,
    stores: [&Server; 2],
    max: f64,
    deadline: Duration,
    mut waiting: impl FnMut(Option<&str>) -> Result<(), MoveError>,
) -> Result<(), MoveError> {
    let mut waited = false;
    loop {
        let (a, b) = tokio::try_join!(
            read(reach, stores[0], deadline),
            read(reach, stores[1], deadline)
        )?;
        match judge(&[(&stores[0].name, a), (&stores[1].name, b)], max) {
            None => {
                if waited {
                    waiting(None)?;
                }
                return Ok(());
            }
            Some(why) => {
                if !waited {
                    tracing::info!("waiting before the next copy pass: {why}");
                }
                waiting(Some(&why))?;
                waited = true;
                tokio::time::sleep(RECHECK).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_load_is_judged_per_cpu_and_names_the_busy_store() {
        let l = Load::parse("3.00 1.50 0.80 3/200 12345\n", "2\n").unwrap();
        assert_eq!(l, Load { one: 3.0, cpus: 2 });
        assert_eq!(l.per_cpu(), 1.5);
        let idle = Load { one: 0.2, cpus: 4 };
        assert_eq!(judge(&[("store1", idle), ("store2", l)], 2.0), None);
        let why = judge(&[("store1", idle), ("store2", l)], 1.0).unwrap();
        assert!(why.starts_with("store2 load 1.50 per CPU"), "{why}");
        assert!(Load::parse("", "2").unwrap_err().contains("/proc/loadavg"));
        assert!(
            Load::parse("1.0 1 1", "zero")
                .unwrap_err()
                .contains("CPU count")
        );
        assert!(Load::parse("1.0 1 1", "0").is_err());
    }
}

//! The [`Snapshot`] of the machine mailfleet runs on: its `/proc` files read directly, each
//! mount's `stat --file-system` in a child process of its own (see [`crate::stuck`]).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::host::{Limits, Mount, STAT_FORMAT, Snapshot, judge, watched};
use crate::outcome::Outcome;

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The machine's name, as the probe reports its host checks under it.
pub fn hostname() -> String {
    let h = read("/proc/sys/kernel/hostname");
    match h.trim() {
        "" => "localhost".into(),
        h => h.to_string(),
    }
}

/// Mount points of watched filesystems, each once.
fn mounts() -> Vec<String> {
    let mut seen = HashSet::new();
    read("/proc/self/mounts")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (point, fs) = (f.get(1)?, f.get(2)?);
            (watched(fs, point) && seen.insert(point.to_string()))
                .then(|| point.replace("\\040", " "))
        })
        .collect()
}

/// One mount's `stat --file-system`, through [`crate::stuck`].
fn stat_mount(mount: &str, timeout: Duration) -> Result<String, String> {
    let mut cmd = std::process::Command::new("stat");
    cmd.args([
        "--file-system",
        &format!("--format={STAT_FORMAT}"),
        "--",
        mount,
    ]);
    let out = crate::stuck::run(mount, &mut cmd, timeout).map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Reads this machine, synchronously (run it on a blocking thread). `extra_mounts` are read
/// even when not of a watched filesystem type (a backup target, say).
pub fn snapshot(timeout: Duration, extra_mounts: &[String]) -> Snapshot {
    let t = Instant::now();
    let stat0 = read("/proc/stat");
    let disk0 = read("/proc/diskstats");
    let mut mount_list = mounts();
    for m in extra_mounts {
        if !mount_list.contains(m) {
            mount_list.push(m.clone());
        }
    }
    // Every mount at once: a hung one costs one deadline, not one each.
    let mounts: Vec<Mount> = std::thread::scope(|scope| {
        let asked: Vec<_> = mount_list
            .iter()
            .map(|m| {
                scope.spawn(move || {
                    let t = Instant::now();
                    let r = stat_mount(m, timeout);
                    (r, t.elapsed().as_secs_f64() * 1000.0)
                })
            })
            .collect();
        asked
            .into_iter()
            .zip(&mount_list)
            .map(|(h, point)| {
                let (stat, ms) = h
                    .join()
                    .unwrap_or_else(|_| (Err("the check panicked".to_string()), 0.0));
                Mount {
                    point: point.clone(),
                    stat,
                    ms,
                }
            })
            .collect()
    });
    // CPU and disk I/O are rates: sample again after a short interval.
    let waited = t.elapsed();
    if waited < Duration::from_millis(200) {
        std::thread::sleep(Duration::from_millis(200) - waited);
    }
    Snapshot {
        stat: [stat0, read("/proc/stat")],
        diskstats: [disk0, read("/proc/diskstats")],
        interval_ms: t.elapsed().as_secs_f64() * 1000.0,
        meminfo: read("/proc/meminfo"),
        loadavg: read("/proc/loadavg"),
        net_dev: read("/proc/net/dev"),
        netstat: read("/proc/net/netstat"),
        ncpu: std::thread::available_parallelism().map_or(1, |n| n.get()),
        mounts,
    }
}

/// Every host check of this machine, synchronously (run it on a blocking thread).
pub fn check(
    server: &str,
    limits: Limits,
    timeout: Duration,
    extra_mounts: &[String],
) -> Vec<Outcome> {
    judge(server, &snapshot(timeout, extra_mounts), limits)
}

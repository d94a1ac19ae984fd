//! The local machine's resources from `/proc` and `statvfs`: CPU, load, memory, swap, disk
//! space and inodes per mount, disk I/O, network errors, TCP listen-queue overflows.
//!
//! A mount that does not answer (a hung NFS server) is CRITICAL after the deadline and never
//! hangs the probe: each `statvfs` runs in a child process (see [`crate::stuck`]).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::outcome::{Outcome, State, Step};

/// Filesystems worth watching; the rest (proc, sysfs, cgroup...) have no space to run out of.
const REAL_FS: &[&str] = &[
    "ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "nfs", "nfs4", "cifs", "smb3", "vfat",
    "overlay", "fuseblk", "f2fs", "jfs", "reiserfs", "tmpfs",
];

/// Thresholds for one resource.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Percent at which a resource is WARNING.
    pub warning: u8,
    /// Percent at which it is CRITICAL.
    pub critical: u8,
}

fn outcome(server: &str, check: String, state: State, ms: f64, message: String) -> Outcome {
    Outcome {
        server: server.to_string(),
        check,
        state,
        elapsed_ms: ms,
        steps: vec![Step { name: "read", ms }],
        message,
    }
}

fn by_pct(pct: f64, l: Limits) -> State {
    if pct >= f64::from(l.critical) {
        State::Critical
    } else if pct >= f64::from(l.warning) {
        State::Warning
    } else {
        State::Ok
    }
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The machine's name, as the probe reports host checks under it.
pub fn hostname() -> String {
    read("/proc/sys/kernel/hostname").map_or_else(|| "localhost".into(), |h| h.trim().to_string())
}

fn meminfo() -> HashMap<String, u64> {
    read("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.to_string(), v.split_whitespace().next()?.parse().ok()?))
        })
        .collect()
}

/// (busy, total) jiffies of all CPUs.
fn cpu_jiffies() -> Option<(u64, u64)> {
    let stat = read("/proc/stat")?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).unwrap_or(&0);
    Some((total - idle, total))
}

/// Per device: (io_ticks ms).
fn disk_ticks() -> HashMap<String, u64> {
    read("/proc/diskstats")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let name = f.get(2)?;
            // Whole disks only: partitions and virtual devices would count the same I/O twice.
            if name.starts_with("loop")
                || name.starts_with("ram")
                || name.chars().last()?.is_ascii_digit() && !name.starts_with("nvme")
            {
                return None;
            }
            Some((name.to_string(), f.get(12)?.parse().ok()?))
        })
        .collect()
}

/// Space and inodes used of a mount, from `stat --file-system` run through [`crate::stuck`].
fn statvfs(mount: &str, timeout: Duration) -> Result<(f64, f64), String> {
    let mut cmd = std::process::Command::new("stat");
    cmd.args(["--file-system", "--format=%b %f %a %c %d", "--", mount]);
    let out = crate::stuck::run(mount, &mut cmd, timeout).map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<u64> = text
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let [blocks, free, avail, files, ffree] = v[..] else {
        return Err(format!("unexpected stat output {text:?}"));
    };
    // As df reads it: used / (used + available to users). The blocks reserved for root are
    // neither, so a disk "full" for users is 100% (and the 75% rule means what admins read).
    let used = blocks.saturating_sub(free);
    let space = if used + avail == 0 {
        0.0
    } else {
        100.0 * used as f64 / (used + avail) as f64
    };
    let inodes = if files == 0 {
        0.0
    } else {
        100.0 * files.saturating_sub(ffree) as f64 / files as f64
    };
    Ok((space, inodes))
}

/// Mount points of real filesystems, each once.
fn mounts() -> Vec<String> {
    let mut seen = HashSet::new();
    read("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (point, fs) = (f.get(1)?, f.get(2)?);
            let real = REAL_FS.contains(fs) || fs.starts_with("fuse.");
            // tmpfs only where mail software writes: /tmp and /run.
            let wanted = real && (*fs != "tmpfs" || *point == "/tmp" || *point == "/run");
            (wanted && seen.insert(point.to_string())).then(|| point.replace("\\040", " "))
        })
        .collect()
}

/// Every host check, synchronously (run it on a blocking thread). `extra_mounts` are
/// checked even when not listed as real filesystems (a backup target, say).
pub fn check(
    server: &str,
    limits: Limits,
    timeout: Duration,
    extra_mounts: &[String],
) -> Vec<Outcome> {
    let mut out = Vec::new();
    let t = Instant::now();
    let cpu0 = cpu_jiffies();
    let disk0 = disk_ticks();
    let mut mount_list = mounts();
    for m in extra_mounts {
        if !mount_list.contains(m) {
            mount_list.push(m.clone());
        }
    }
    // Every mount at once: a hung one costs one deadline, not one each.
    type Measured = (Result<(f64, f64), String>, f64);
    let results: Vec<Measured> = std::thread::scope(|scope| {
        let asked: Vec<_> = mount_list
            .iter()
            .map(|m| {
                scope.spawn(move || {
                    let t = Instant::now();
                    let r = statvfs(m, timeout);
                    (r, t.elapsed().as_secs_f64() * 1000.0)
                })
            })
            .collect();
        asked
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| (Err("the check panicked".to_string()), 0.0))
            })
            .collect()
    });
    for (m, (r, ms)) in mount_list.iter().zip(results) {
        match r {
            Ok((space, inodes)) => {
                out.push(outcome(
                    server,
                    format!("disk:{m}"),
                    by_pct(space, limits),
                    ms,
                    format!("{space:.1}% used"),
                ));
                out.push(outcome(
                    server,
                    format!("inodes:{m}"),
                    by_pct(inodes, limits),
                    ms,
                    format!("{inodes:.1}% of inodes used"),
                ));
            }
            Err(e) => out.push(outcome(server, format!("disk:{m}"), State::Critical, ms, e)),
        }
    }
    // CPU and disk I/O are rates: sample again after a short interval.
    let waited = t.elapsed();
    if waited < Duration::from_millis(200) {
        std::thread::sleep(Duration::from_millis(200) - waited);
    }
    let elapsed_ms = t.elapsed().as_secs_f64() * 1000.0;
    if let (Some((b0, t0)), Some((b1, t1))) = (cpu0, cpu_jiffies())
        && t1 > t0
    {
        let pct = 100.0 * (b1 - b0) as f64 / (t1 - t0) as f64;
        out.push(outcome(
            server,
            "cpu".into(),
            by_pct(pct, limits),
            elapsed_ms,
            format!("{pct:.1}% busy"),
        ));
    }
    let disk1 = disk_ticks();
    for (dev, ticks1) in &disk1 {
        if let Some(ticks0) = disk0.get(dev) {
            let pct = (100.0 * ticks1.saturating_sub(*ticks0) as f64 / elapsed_ms).min(100.0);
            out.push(outcome(
                server,
                format!("io:{dev}"),
                by_pct(pct, limits),
                elapsed_ms,
                format!("{pct:.1}% utilised"),
            ));
        }
    }
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    // The 5-minute average: the 1-minute one jumps with every compile or backup burst.
    let loads: Vec<f64> = read("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    if let [one, five, fifteen] = loads[..] {
        let pct = 100.0 * five / ncpu;
        out.push(outcome(server, "load".into(), by_pct(pct, limits), 0.0, format!("load {one:.2} {five:.2} {fifteen:.2} on {ncpu} CPUs (judged on the 5-minute average)")));
    }
    let mem = meminfo();
    if let (Some(total), Some(avail)) = (mem.get("MemTotal"), mem.get("MemAvailable"))
        && *total > 0
    {
        let pct = 100.0 * (total - avail.min(total)) as f64 / *total as f64;
        out.push(outcome(
            server,
            "memory".into(),
            by_pct(pct, limits),
            0.0,
            format!("{pct:.1}% used of {} MB", total / 1024),
        ));
    }
    match (mem.get("SwapTotal"), mem.get("SwapFree")) {
        (Some(total), Some(free)) if *total > 0 => {
            let pct = 100.0 * (total - free.min(total)) as f64 / *total as f64;
            out.push(outcome(
                server,
                "swap".into(),
                by_pct(pct, limits),
                0.0,
                format!("{pct:.1}% used"),
            ));
        }
        _ => out.push(outcome(
            server,
            "swap".into(),
            State::Ok,
            0.0,
            "no swap".into(),
        )),
    }
    out.push(net_errors(server));
    out.push(listen_overflows(server));
    out
}

fn net_errors(server: &str) -> Outcome {
    let (mut errs, mut drops) = (0u64, 0u64);
    for l in read("/proc/net/dev").unwrap_or_default().lines().skip(2) {
        let Some((_, rest)) = l.split_once(':') else {
            continue;
        };
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if f.len() >= 12 {
            errs += f[2] + f[10];
            drops += f[3] + f[11];
        }
    }
    // Counters since boot: the monitor turns them into rates; one round only reports them.
    outcome(
        server,
        "net-errors".into(),
        State::Ok,
        0.0,
        format!("{errs} errors, {drops} drops since boot"),
    )
}

fn listen_overflows(server: &str) -> Outcome {
    let text = read("/proc/net/netstat").unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("TcpExt:")).collect();
    let mut found = None;
    if let [names, values] = lines[..] {
        let pairs: HashMap<&str, &str> = names
            .split_whitespace()
            .zip(values.split_whitespace())
            .collect();
        found = pairs
            .get("ListenOverflows")
            .and_then(|v| v.parse::<u64>().ok());
    }
    match found {
        Some(n) => outcome(
            server,
            "tcp-listen-overflows".into(),
            State::Ok,
            0.0,
            format!("{n} since boot"),
        ),
        None => outcome(
            server,
            "tcp-listen-overflows".into(),
            State::Unknown,
            0.0,
            "no TcpExt counters in /proc/net/netstat".into(),
        ),
    }
}

//! A machine's resources judged from one [`Snapshot`] of its `/proc` files and of `stat
//! --file-system` per mount: CPU, load, memory, swap, disk space and inodes per mount, disk
//! I/O, network errors, TCP listen-queue overflows. The snapshot is read on this machine
//! ([`crate::host_local`]) or on the server through its access ([`crate::host_remote`]).
//!
//! A mount that does not answer (a hung NFS server) is CRITICAL after the deadline and never
//! hangs the probe: each `stat` runs in a process of its own, left behind if it hangs.

use std::collections::HashMap;

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
        value: None,
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

/// One reading of a machine: what the checks are judged from.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// `/proc/stat` at the first and the second sample.
    pub stat: [String; 2],
    /// `/proc/diskstats` at the two samples.
    pub diskstats: [String; 2],
    /// Milliseconds between the two samples.
    pub interval_ms: f64,
    /// `/proc/meminfo`.
    pub meminfo: String,
    /// `/proc/loadavg`.
    pub loadavg: String,
    /// `/proc/net/dev`.
    pub net_dev: String,
    /// `/proc/net/netstat`.
    pub netstat: String,
    /// Online CPUs.
    pub ncpu: usize,
    /// Every watched mount, in order.
    pub mounts: Vec<Mount>,
}

/// One mount's reading.
#[derive(Debug, Clone)]
pub struct Mount {
    /// Its mount point.
    pub point: String,
    /// `stat --file-system --format='%b %f %a %c %d'` output, or why there is none.
    pub stat: Result<String, String>,
    /// How long it took (ms).
    pub ms: f64,
}

/// The `stat` format the mounts are read with: blocks, free, available, files, free files.
pub const STAT_FORMAT: &str = "%b %f %a %c %d";

/// Whether a mount of filesystem `fs` at `point` is watched.
pub fn watched(fs: &str, point: &str) -> bool {
    let real = REAL_FS.contains(&fs) || fs.starts_with("fuse.");
    // tmpfs only where mail software writes: /tmp and /run.
    real && (fs != "tmpfs" || point == "/tmp" || point == "/run")
}

/// The same rule as [`watched`], as `FS=POINT` shell patterns (for the script run on a
/// server).
pub fn watched_patterns() -> Vec<String> {
    let mut v: Vec<String> = REAL_FS
        .iter()
        .filter(|fs| **fs != "tmpfs")
        .map(|fs| format!("{fs}=*"))
        .collect();
    v.extend(["fuse.*=*".into(), "tmpfs=/tmp".into(), "tmpfs=/run".into()]);
    v
}

fn meminfo(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.to_string(), v.split_whitespace().next()?.parse().ok()?))
        })
        .collect()
}

/// (busy, total) jiffies of all CPUs.
fn cpu_jiffies(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).unwrap_or(&0);
    Some((total.saturating_sub(idle), total))
}

/// Per device: (io_ticks ms).
fn disk_ticks(diskstats: &str) -> HashMap<String, u64> {
    diskstats
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

/// Space and inodes used (percent), from `stat --file-system` output in [`STAT_FORMAT`].
fn space_and_inodes(text: &str) -> Result<(f64, f64), String> {
    let v: Vec<u64> = text
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let [blocks, free, avail, files, ffree] = v[..] else {
        return Err(format!("unexpected stat output {:?}", text.trim()));
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

/// Every host check of one snapshot.
pub fn judge(server: &str, snap: &Snapshot, limits: Limits) -> Vec<Outcome> {
    let mut out = Vec::new();
    for m in &snap.mounts {
        match m.stat.clone().and_then(|t| space_and_inodes(&t)) {
            Ok((space, inodes)) => {
                out.push(
                    outcome(
                        server,
                        format!("disk:{}", m.point),
                        by_pct(space, limits),
                        m.ms,
                        format!("{space:.1}% used"),
                    )
                    .with_value(space),
                );
                out.push(
                    outcome(
                        server,
                        format!("inodes:{}", m.point),
                        by_pct(inodes, limits),
                        m.ms,
                        format!("{inodes:.1}% of inodes used"),
                    )
                    .with_value(inodes),
                );
            }
            Err(e) => out.push(outcome(
                server,
                format!("disk:{}", m.point),
                State::Critical,
                m.ms,
                e,
            )),
        }
    }
    let elapsed_ms = snap.interval_ms;
    if let (Some((b0, t0)), Some((b1, t1))) =
        (cpu_jiffies(&snap.stat[0]), cpu_jiffies(&snap.stat[1]))
        && t1 > t0
    {
        let pct = 100.0 * b1.saturating_sub(b0) as f64 / (t1 - t0) as f64;
        out.push(
            outcome(
                server,
                "cpu".into(),
                by_pct(pct, limits),
                elapsed_ms,
                format!("{pct:.1}% busy"),
            )
            .with_value(pct),
        );
    }
    let disk0 = disk_ticks(&snap.diskstats[0]);
    let mut disk1: Vec<(String, u64)> = disk_ticks(&snap.diskstats[1]).into_iter().collect();
    disk1.sort();
    for (dev, ticks1) in &disk1 {
        if let Some(ticks0) = disk0.get(dev)
            && elapsed_ms > 0.0
        {
            let pct = (100.0 * ticks1.saturating_sub(*ticks0) as f64 / elapsed_ms).min(100.0);
            out.push(
                outcome(
                    server,
                    format!("io:{dev}"),
                    by_pct(pct, limits),
                    elapsed_ms,
                    format!("{pct:.1}% utilised"),
                )
                .with_value(pct),
            );
        }
    }
    let ncpu = snap.ncpu.max(1) as f64;
    // The 5-minute average: the 1-minute one jumps with every compile or backup burst.
    let loads: Vec<f64> = snap
        .loadavg
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    if let [one, five, fifteen] = loads[..] {
        let pct = 100.0 * five / ncpu;
        out.push(outcome(server, "load".into(), by_pct(pct, limits), 0.0, format!("load {one:.2} {five:.2} {fifteen:.2} on {ncpu} CPUs (judged on the 5-minute average)")).with_value(pct));
    }
    let mem = meminfo(&snap.meminfo);
    if let (Some(total), Some(avail)) = (mem.get("MemTotal"), mem.get("MemAvailable"))
        && *total > 0
    {
        let pct = 100.0 * (total - avail.min(total)) as f64 / *total as f64;
        out.push(
            outcome(
                server,
                "memory".into(),
                by_pct(pct, limits),
                0.0,
                format!("{pct:.1}% used of {} MB", total / 1024),
            )
            .with_value(pct),
        );
    }
    match (mem.get("SwapTotal"), mem.get("SwapFree")) {
        (Some(total), Some(free)) if *total > 0 => {
            let pct = 100.0 * (total - free.min(total)) as f64 / *total as f64;
            out.push(
                outcome(
                    server,
                    "swap".into(),
                    by_pct(pct, limits),
                    0.0,
                    format!("{pct:.1}% used"),
                )
                .with_value(pct),
            );
        }
        _ => out.push(outcome(
            server,
            "swap".into(),
            State::Ok,
            0.0,
            "no swap".into(),
        )),
    }
    out.push(net_errors(server, &snap.net_dev));
    out.push(listen_overflows(server, &snap.netstat));
    out
}

fn net_errors(server: &str, net_dev: &str) -> Outcome {
    let (mut errs, mut drops) = (0u64, 0u64);
    for l in net_dev.lines().skip(2) {
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

fn listen_overflows(server: &str, text: &str) -> Outcome {
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

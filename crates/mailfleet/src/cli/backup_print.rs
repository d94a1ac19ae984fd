//! How `mailfleet backup ...` prints its results for a person (`--json` prints the values).

use mailfleet_backup::maintenance::AccountDiff;
use mailfleet_backup::run::RunReport;
use mailfleet_backup::snapshot::Snapshot;
use mailfleet_core::Config;

pub(crate) fn print_report(r: &RunReport) {
    println!(
        "snapshot {}: {} accounts, {} messages ({} bytes); read {} new or changed ({} bytes), {} unchanged, {} vanished during the run",
        r.snapshot,
        r.accounts,
        r.messages,
        r.bytes,
        r.read_messages,
        r.read_bytes,
        r.unchanged_messages,
        r.vanished
    );
    println!(
        "stored {} new blobs, {} bytes ({} already there); {:.1}x less than read; {:.2} s",
        r.stored.new_blobs,
        r.stored.stored_bytes,
        r.stored.reused_blobs,
        r.dedup_ratio(),
        r.elapsed_secs
    );
}

pub(crate) fn print_snapshots(config: &Config, snaps: &[Snapshot]) {
    if snaps.is_empty() {
        println!("no snapshots in {}", config.backup.repository);
        return;
    }
    println!(
        "{:<28} {:<20} {:>8} {:>10} {:>14}",
        "ID", "TIME", "ACCOUNTS", "MESSAGES", "BYTES"
    );
    for s in snaps {
        println!(
            "{:<28} {:<20} {:>8} {:>10} {:>14}",
            s.id,
            s.time.format("%Y-%m-%d %H:%M:%S"),
            s.accounts.len(),
            s.accounts.iter().map(|a| a.messages).sum::<u64>(),
            s.accounts.iter().map(|a| a.bytes).sum::<u64>()
        );
    }
}

pub(crate) fn print_diff(a: &Snapshot, b: &Snapshot, d: &[AccountDiff]) {
    if d.is_empty() {
        println!("no difference between {} and {}", a.id, b.id);
    }
    for acc in d {
        println!(
            "{}: {} added, {} removed, {} with new flags",
            acc.address,
            acc.added.len(),
            acc.removed.len(),
            acc.flags_changed.len()
        );
        for m in &acc.added {
            println!("  + {m}");
        }
        for m in &acc.removed {
            println!("  - {m}");
        }
        for m in &acc.flags_changed {
            println!("  ~ {m}");
        }
    }
}

//! How `mailfleet backup ...` prints its results for a person (`--json` prints the values).

use mailfleet_backup::maintenance::{AccountDiff, ForgetPlan, PruneReport};
use mailfleet_backup::run::RunReport;
use mailfleet_backup::snapshot::Snapshot;
use mailfleet_backup::verify::VerifyReport;
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

pub(crate) fn print_forget(plan: &ForgetPlan, dry_run: bool) {
    let verb = if dry_run { "would forget" } else { "forgot" };
    println!(
        "keeping {} snapshots; {verb} {}",
        plan.keep.len(),
        plan.forget.len()
    );
    for id in &plan.forget {
        println!("  {id}");
    }
}

pub(crate) fn print_prune(report: &PruneReport, dry_run: bool) {
    println!(
        "{} blobs in use; {} {} unused blobs ({} packs deleted, {} rewritten; {} unused kept in packs mostly in use) and {} leftover temporary files",
        report.referenced,
        if dry_run { "would delete" } else { "deleted" },
        report.deleted,
        report.packs_deleted,
        report.packs_rewritten,
        report.unused_kept,
        report.temporary_files
    );
}

pub(crate) fn print_verify(report: &VerifyReport, read_data: bool) {
    println!(
        "{} snapshots, {} messages ({} distinct), {} blobs checked{}: {}",
        report.snapshots,
        report.messages,
        report.distinct_messages,
        report.blobs,
        if read_data { " (data read)" } else { "" },
        if report.ok() { "OK" } else { "DAMAGED" }
    );
    for d in &report.damaged {
        println!("  {d}");
    }
}

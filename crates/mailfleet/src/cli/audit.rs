//! `mailfleet audit passwords`: the weak-password sweep over the account directory.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use clap::Subcommand;
use mailfleet_policy::sweep::{SweepOptions, SweepProgress};

use super::{Context, exit, print_json};

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCmd {
    /// Try every account's stored hash against common passwords and guesses from its address.
    /// Exits 1 when weak passwords are found.
    Passwords {
        /// Block the accounts found (reason `weak-password`; lifted when the password changes).
        #[arg(long)]
        block: bool,
        /// Use this list (one password per line) instead of the shipped 10,000.
        #[arg(long)]
        wordlist: Option<PathBuf>,
        /// Only the first N passwords of the list (for slow hashes on big directories).
        #[arg(long)]
        top: Option<usize>,
        /// Print the passwords found (hidden by default).
        #[arg(long)]
        show: bool,
        /// Threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Every action taken through mailfleet (accounts, blocks, releases, backups, restores,
    /// moves, upgrades): who, via what, from where, the command and its result.
    Log {
        /// Only actions since then: 30m, 24h, 7d, a date or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
    },
}

pub(crate) async fn run(cmd: AuditCmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    let (block, wordlist, top, show, threads) = match cmd {
        AuditCmd::Log { since } => return super::audit_log::print(ctx, since.as_deref()),
        AuditCmd::Passwords {
            block,
            wordlist,
            top,
            show,
            threads,
        } => (block, wordlist, top, show, threads),
    };
    let config = ctx.load()?;
    let options = SweepOptions {
        block,
        wordlist,
        top,
        show,
        threads,
    };
    let progress = Arc::new(SweepProgress::default());
    let bar = (!ctx.json && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
        let b = indicatif::ProgressBar::new(0);
        if let Ok(s) = indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} accounts ({per_sec}, ETA {eta})",
        ) {
            b.set_style(s);
        }
        b
    });
    let work = mailfleet_policy::sweep::passwords(&config, &options, Arc::clone(&progress));
    tokio::pin!(work);
    let report = loop {
        tokio::select! {
            r = &mut work => break r?,
            () = tokio::time::sleep(std::time::Duration::from_millis(200)) => {
                if let Some(b) = &bar {
                    b.set_length(progress.total.load(Ordering::Relaxed));
                    b.set_position(progress.done.load(Ordering::Relaxed));
                }
            }
        }
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if ctx.json {
        print_json(&report)?;
    } else {
        println!(
            "{} accounts, {} guesses: {} weak passwords{}",
            report.accounts,
            report.guesses,
            report.weak.len(),
            if block && !report.weak.is_empty() {
                ", blocked"
            } else {
                ""
            }
        );
        for f in &report.weak {
            match &f.password {
                Some(p) => println!("  {:<32} {:<14} {} ({})", f.address, f.scheme, p, f.source),
                None => println!("  {:<32} {:<14} from the {}", f.address, f.scheme, f.source),
            }
        }
        for (a, why) in &report.unchecked {
            println!("  {a}: not checked: {why}");
        }
    }
    Ok(exit::code(if report.weak.is_empty() {
        exit::OK
    } else {
        exit::PROBLEM
    }))
}

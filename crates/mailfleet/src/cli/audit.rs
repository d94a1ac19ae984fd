//! `mailfleet audit passwords`: the weak-password sweep over the account directory.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use clap::Subcommand;
use mailfleet_policy::audit;

use super::{Context, print_json};

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
}

pub(crate) async fn run(cmd: AuditCmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    let AuditCmd::Passwords {
        block,
        wordlist,
        top,
        show,
        threads,
    } = cmd;
    let config = ctx.load()?;
    let mut words = match &wordlist {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| format!("reading {}", f.display()))?
            .lines()
            .map(|l| l.trim_end_matches('\r').to_string())
            .filter(|l| !l.is_empty())
            .collect(),
        None => audit::common_list(),
    };
    if let Some(n) = top {
        words.truncate(n);
    }
    let directory = mailfleet_core::directory::open(&config.directory).await?;
    let accounts: Vec<(String, String)> = directory
        .list(&mailfleet_core::directory::Filter::default())
        .await?
        .into_iter()
        .filter_map(|a| Some((a.address.to_string(), a.password_hash?)))
        .collect();
    let threads = threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let progress = Arc::new(AtomicU64::new(0));
    let bar = (!ctx.json && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
        let b = indicatif::ProgressBar::new(accounts.len() as u64);
        if let Ok(s) = indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} accounts ({per_sec}, ETA {eta})",
        ) {
            b.set_style(s);
        }
        b
    });
    let work = {
        let (accounts, progress) = (accounts.clone(), progress.clone());
        tokio::task::spawn_blocking(move || {
            audit::audit(&accounts, &words, threads, show, &progress)
        })
    };
    tokio::pin!(work);
    let report = loop {
        tokio::select! {
            r = &mut work => break r?,
            () = tokio::time::sleep(std::time::Duration::from_millis(200)) => {
                if let Some(b) = &bar {
                    b.set_position(progress.load(Ordering::Relaxed));
                }
            }
        }
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if block && !report.weak.is_empty() {
        let book = mailfleet_core::AccountBook::open(&config).await?;
        let counters = mailfleet_policy::service::counters(&config)?;
        for f in &report.weak {
            book.block_sending(
                &f.address,
                &format!(
                    "weak-password: guessable ({}); change it to send again",
                    f.source
                ),
            )
            .await?;
            mailfleet_policy::service::remember_password_at_block(
                counters.as_ref(),
                directory.as_ref(),
                &mailfleet_core::Address::parse(&f.address)?,
            )
            .await?;
        }
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
    Ok(if report.weak.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

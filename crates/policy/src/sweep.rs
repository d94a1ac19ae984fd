//! `audit passwords` as a command: every account's stored hash from the directory tried
//! against the wordlist and guesses from its address on all cores, and the weak ones
//! blocked when asked (lifted once the password changes).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mailfleet_core::{AccountBook, Address, Config};

use crate::audit::Report;
use crate::error::PolicyError;

/// How to sweep.
#[derive(Debug, Clone, Default)]
pub struct SweepOptions {
    /// Block the accounts found (reason `weak-password`).
    pub block: bool,
    /// This list (one password per line) instead of the shipped one.
    pub wordlist: Option<PathBuf>,
    /// Only the first N passwords of the list.
    pub top: Option<usize>,
    /// Keep the passwords found in the report.
    pub show: bool,
    /// Threads (all cores when `None`).
    pub threads: Option<usize>,
}

/// How far a sweep is: accounts in all and done (read while it runs).
#[derive(Debug, Default)]
pub struct SweepProgress {
    /// Accounts to check (set once they are read from the directory).
    pub total: AtomicU64,
    /// Accounts checked.
    pub done: AtomicU64,
}

fn wordlist(options: &SweepOptions) -> Result<Vec<String>, PolicyError> {
    let mut words: Vec<String> = match &options.wordlist {
        Some(f) => std::fs::read_to_string(f)
            .map_err(PolicyError::io(format!("reading {}", f.display())))?
            .lines()
            .map(|l| l.trim_end_matches('\r').to_string())
            .filter(|l| !l.is_empty())
            .collect(),
        None => crate::audit::common_list(),
    };
    if let Some(n) = options.top {
        words.truncate(n);
    }
    Ok(words)
}

/// Sweeps the directory; with `block`, blocks every account found weak.
pub async fn passwords(
    config: &Config,
    options: &SweepOptions,
    progress: Arc<SweepProgress>,
) -> Result<Report, PolicyError> {
    let words = wordlist(options)?;
    let book = AccountBook::open(config)
        .await
        .map_err(PolicyError::Account)?;
    let accounts: Vec<(String, String)> = book
        .directory()
        .list(&mailfleet_core::directory::Filter::default())
        .await?
        .into_iter()
        .filter_map(|a| Some((a.address.to_string(), a.password_hash?)))
        .collect();
    progress
        .total
        .store(accounts.len() as u64, Ordering::Relaxed);
    let threads = options
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let show = options.show;
    let counter = Arc::clone(&progress);
    let report = tokio::task::spawn_blocking(move || {
        crate::audit::audit(&accounts, &words, threads, show, &counter.done)
    })
    .await
    .map_err(|e| PolicyError::io("the password audit")(std::io::Error::other(e)))?;
    if options.block && !report.weak.is_empty() {
        let counters = crate::service::counters(config)?;
        for f in &report.weak {
            let reason = format!(
                "weak-password: guessable ({}); change it to send again",
                f.source
            );
            book.block_sending(&f.address, &reason)
                .await
                .map_err(PolicyError::Account)?;
            let address = Address::parse(&f.address).map_err(|e| {
                PolicyError::Account(mailfleet_core::accounts::AccountError::from(e))
            })?;
            crate::service::remember_password_at_block(
                counters.as_ref(),
                book.directory(),
                &address,
            )
            .await?;
        }
        counters.flush().await?;
    }
    Ok(report)
}

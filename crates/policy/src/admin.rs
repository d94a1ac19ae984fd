//! The admin's commands on the policy state, for the command line and the daemon alike:
//! status, held mail (list, release, purge), resets and send blocks. Every one goes through
//! the configured state store (embedded or Redis) and the account directory, never around
//! them, so what they show and change is what the policy servers see.

use std::sync::Arc;

use mailfleet_core::{AccountBook, Address, Config};
use serde::Serialize;

use crate::counters::{Counters, Held, Usage, now_ms};
use crate::dnsbl::ListHits;
use crate::error::PolicyError;

/// A send-blocked account.
#[derive(Debug, Clone, Serialize)]
pub struct Blocked {
    /// The account.
    pub address: String,
    /// Why.
    pub reason: String,
    /// Since when (RFC 3339).
    pub since: String,
}

/// One sender's usage in the window.
#[derive(Debug, Clone, Serialize)]
pub struct Sender {
    /// The account.
    pub account: String,
    /// What it sent in the window.
    pub usage: Usage,
    /// Its rule's message limit, if one applies.
    pub limit_messages: Option<u64>,
}

/// Counters, held mail, blocks and DNSBL hits.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The quota window.
    pub window_secs: u64,
    /// Senders with usage in the window, most first.
    pub senders: Vec<Sender>,
    /// Messages held.
    pub held: usize,
    /// Send-blocked accounts.
    pub blocked: Vec<Blocked>,
    /// Hits per DNSBL (as this machine's policy server last wrote them).
    pub dnsbl: Vec<ListHits>,
}

/// What a block did.
#[derive(Debug, Clone, Serialize)]
pub struct BlockSet {
    /// The account.
    pub address: String,
    /// Why.
    pub reason: String,
    /// Whether it lifts itself when the account's password changes.
    pub lifts_on_password_change: bool,
}

/// The state store of the config.
fn state(config: &Config) -> Result<Arc<dyn Counters>, PolicyError> {
    crate::service::counters(config)
}

fn key(address: &str) -> String {
    address.trim().to_ascii_lowercase()
}

/// The send-blocked accounts, from the directory.
pub async fn blocked(config: &Config) -> Result<Vec<Blocked>, PolicyError> {
    let directory = mailfleet_core::directory::open(&config.directory).await?;
    Ok(directory
        .list(&mailfleet_core::directory::Filter::default())
        .await?
        .into_iter()
        .filter_map(|a| {
            let b = a.send_block?;
            Some(Blocked {
                address: a.address.to_string(),
                reason: b.reason,
                since: b.since.to_rfc3339(),
            })
        })
        .collect())
}

/// The DNSBL hits the policy server left on this machine (none if it wrote none yet).
fn dnsbl_hits(config: &Config) -> Result<Vec<ListHits>, PolicyError> {
    let path = crate::service::dnsbl_hits_file(&config.policy);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| {
            PolicyError::io(format!("reading {}", path.display()))(std::io::Error::other(e))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(PolicyError::io(format!("reading {}", path.display()))(e)),
    }
}

/// Counters, held mail, blocks and DNSBL hits.
pub async fn status(config: &Config) -> Result<Status, PolicyError> {
    let counters = state(config)?;
    let window = config.policy.window;
    let usage = counters
        .all_usage(now_ms(), window.as_millis() as u64)
        .await?;
    let held = counters.held(None).await?.len();
    Ok(Status {
        window_secs: window.as_secs(),
        senders: usage
            .into_iter()
            .map(|(account, usage)| Sender {
                limit_messages: config
                    .policy
                    .rule_for(&account)
                    .filter(|r| !r.exempt)
                    .and_then(|r| r.messages),
                account,
                usage,
            })
            .collect(),
        held,
        blocked: blocked(config).await?,
        dnsbl: dnsbl_hits(config)?,
    })
}

/// Mail held for being over quota, oldest first (of one account, or all).
pub async fn held(config: &Config, address: Option<&str>) -> Result<Vec<Held>, PolicyError> {
    let k = address.map(key);
    state(config)?.held(k.as_deref()).await
}

/// Releases (or, with `purge`, deletes) an account's held mail now, whatever its quota;
/// returns the queue IDs acted on.
async fn act_on_held(
    config: &Config,
    address: &str,
    purge: bool,
) -> Result<Vec<String>, PolicyError> {
    let k = key(address);
    let counters = state(config)?;
    let held = counters.held(Some(&k)).await?;
    if held.is_empty() {
        return Err(PolicyError::NotFound(format!("no mail of {k} is held")));
    }
    // Each record on its own MTA: the one it names, else the policy's.
    let reach = mailfleet_remote::Reach::new();
    let mut by_mta: Vec<(Option<String>, Vec<&Held>)> = Vec::new();
    for h in &held {
        match by_mta.iter_mut().find(|(m, _)| *m == h.mta) {
            Some((_, v)) => v.push(h),
            None => by_mta.push((h.mta.clone(), vec![h])),
        }
    }
    let mut done = Vec::new();
    for (mta, records) in by_mta {
        let postfix = match &mta {
            Some(name) => postfix_named(config, &reach, name)?,
            None => crate::release::postfix_of(&config.policy, &reach),
        };
        let ids: Vec<&str> = records.iter().map(|h| h.queue_id.as_str()).collect();
        if purge {
            crate::release::delete_ids(&postfix, &ids).await?;
        } else {
            crate::release::release_ids(&postfix, &ids).await?;
        }
        for h in records {
            counters.unhold(h).await?;
            done.push(h.queue_id.clone());
        }
    }
    counters.flush().await?;
    Ok(done)
}

/// The Postfix of the fleet's MTA `name`, through its access (the policy's
/// `postfix_config_dir` when that MTA is the policy's own).
fn postfix_named(
    config: &Config,
    reach: &mailfleet_remote::Reach,
    name: &str,
) -> Result<mailfleet_core::postfix::Postfix, PolicyError> {
    if config.policy.mta.as_deref() == Some(name) {
        return Ok(crate::release::postfix_of(&config.policy, reach));
    }
    let server = config.fleet.server(name).ok_or_else(|| {
        PolicyError::NotFound(format!(
            "held mail is on MTA {name}, which is not in this config's fleet"
        ))
    })?;
    Ok(mailfleet_core::postfix::Postfix::new(
        reach,
        name,
        &server.access,
        server.postfix_dir.as_deref(),
    ))
}

/// Releases an account's held mail now, whatever its quota.
pub async fn release(config: &Config, address: &str) -> Result<Vec<String>, PolicyError> {
    act_on_held(config, address, false).await
}

/// Deletes an account's held mail from the queue.
pub async fn purge(config: &Config, address: &str) -> Result<Vec<String>, PolicyError> {
    act_on_held(config, address, true).await
}

/// Forgets an account's usage: its counters start from zero on every server.
pub async fn reset(config: &Config, address: &str) -> Result<String, PolicyError> {
    let k = key(address);
    let counters = state(config)?;
    counters.reset(&k).await?;
    counters.flush().await?;
    Ok(k)
}

/// Blocks an account from sending (every MTA's server reads it from the directory); a block
/// that lifts on a password change remembers the password it was set under.
pub async fn block(config: &Config, address: &str, reason: &str) -> Result<BlockSet, PolicyError> {
    let book = AccountBook::open(config)
        .await
        .map_err(PolicyError::Account)?;
    book.block_sending(address, reason)
        .await
        .map_err(PolicyError::Account)?;
    let lifts = crate::service::lifts_on_password_change(reason);
    if lifts {
        let counters = state(config)?;
        let parsed = Address::parse(address)
            .map_err(|e| PolicyError::Account(mailfleet_core::accounts::AccountError::from(e)))?;
        crate::service::remember_password_at_block(counters.as_ref(), book.directory(), &parsed)
            .await?;
        counters.flush().await?;
    }
    Ok(BlockSet {
        address: address.to_string(),
        reason: reason.trim().to_string(),
        lifts_on_password_change: lifts,
    })
}

/// Lifts a send block.
pub async fn unblock(config: &Config, address: &str) -> Result<(), PolicyError> {
    let book = AccountBook::open(config)
        .await
        .map_err(PolicyError::Account)?;
    book.unblock_sending(address)
        .await
        .map_err(PolicyError::Account)
}

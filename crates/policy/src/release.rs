//! Releasing held mail at the allowed rate: each round, every sender's held messages are let
//! go oldest first (`postsuper -H`) while its quota has room, each counted as it goes; a held
//! message no longer in the hold queue (an admin released or deleted it) is forgotten. Several
//! MTAs may share the records (Redis): each policy server acts only on the records of its own
//! MTA (`[policy] mta`), so a message is released once, and a record of another MTA's hold
//! queue is never taken for gone.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use mailfleet_core::config::policy::PolicyConfig;
use mailfleet_core::postfix::Postfix;

use serde::Serialize;

use crate::counters::{Held, Limits, now_ms};
use crate::engine::Engine;
use crate::error::PolicyError;

/// Deadline of one Postfix command (postqueue, postsuper).
const POSTFIX_TIMEOUT: Duration = Duration::from_secs(30);

/// The Postfix whose hold queue this policy server releases: its `[policy] mta`, through
/// that server's access, or the one on this machine.
pub fn postfix_of(config: &PolicyConfig, reach: &mailfleet_remote::Reach) -> Postfix {
    Postfix::new(
        reach,
        config.mta.as_deref().unwrap_or("local"),
        &config.mta_access,
        config.postfix_config_dir.as_deref(),
    )
}

/// Every message in Postfix's queue: queue ID to the queue it is in (`hold`, `incoming`...).
pub async fn queue(postfix: &Postfix) -> Result<HashMap<String, String>, PolicyError> {
    Ok(postfix
        .queue(POSTFIX_TIMEOUT)
        .await?
        .into_iter()
        .map(|e| (e.queue_id, e.queue_name))
        .collect())
}

/// How long a held record may wait to show up in the hold queue: the policy service answers
/// HOLD before cleanup has finished the queue file and moved it there.
const SETTLE_MS: u64 = 60_000;

/// `postsuper FLAG ID FLAG ID ...`, a hundred IDs a call.
async fn postsuper(postfix: &Postfix, flag: &str, ids: &[&str]) -> Result<(), PolicyError> {
    for chunk in ids.chunks(100) {
        let args: Vec<&str> = chunk.iter().flat_map(|id| [flag, *id]).collect();
        postfix.run("postsuper", &args, POSTFIX_TIMEOUT).await?;
    }
    Ok(())
}

/// Takes messages off hold and has them delivered now: `postsuper -H` only moves them to the
/// deferred queue, which qmgr scans every `queue_run_delay` (5 minutes by default), so each
/// is then scheduled with `postqueue -i`.
pub async fn release_ids(postfix: &Postfix, ids: &[&str]) -> Result<(), PolicyError> {
    postsuper(postfix, "-H", ids).await?;
    for id in ids {
        if let Err(e) = postfix.run("postqueue", &["-i", id], POSTFIX_TIMEOUT).await {
            // Released all the same: it goes out with the next deferred-queue run.
            tracing::warn!("scheduling released message {id}: {e}");
        }
    }
    Ok(())
}

/// Deletes messages from the queue (`policy purge`).
pub async fn delete_ids(postfix: &Postfix, ids: &[&str]) -> Result<(), PolicyError> {
    postsuper(postfix, "-d", ids).await
}

/// What one release round did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Round {
    /// Messages released.
    pub released: Vec<String>,
    /// Held records dropped because the message left the hold queue some other way.
    pub gone: Vec<String>,
    /// Messages still waiting.
    pub waiting: usize,
}

/// One round: release what each sender's quota allows now.
pub async fn round(engine: &Engine) -> Result<Round, PolicyError> {
    let postfix = engine.postfix();
    let counters = engine.counters();
    let held = counters.held(None).await?;
    if held.is_empty() {
        return Ok(Round::default());
    }
    let mine = engine.config().mta.as_deref();
    let held: Vec<Held> = held
        .into_iter()
        // A record naming another MTA is that MTA's server's to release.
        .filter(|h| h.mta.is_none() || h.mta.as_deref() == mine)
        .collect();
    if held.is_empty() {
        return Ok(Round::default());
    }
    let queued = queue(postfix).await?;
    let window = engine.config().window.as_millis() as u64;
    let mut out = Round::default();
    let mut stalled: HashSet<String> = HashSet::new();
    let mut release: Vec<Held> = Vec::new();
    for h in held {
        if queued.get(&h.queue_id).map(String::as_str) != Some("hold") {
            if h.mta.is_none() && mine.is_some() {
                // A record that does not say its MTA may be another MTA's: left to the server
                // whose hold queue has it.
                continue;
            }
            if now_ms().saturating_sub(h.at_ms) < SETTLE_MS {
                // Not on hold yet: cleanup is still writing it.
                out.waiting += 1;
                continue;
            }
            // Released or deleted by an admin, or rejected after all.
            counters.unhold(&h).await?;
            out.gone.push(h.queue_id);
            continue;
        }
        // Oldest first per sender: once one waits, the younger ones wait too.
        if stalled.contains(&h.key) {
            out.waiting += 1;
            continue;
        }
        let limits = engine.limits(&h.key).map_or(Limits::default(), |(l, _)| l);
        let (added, _) = counters
            .try_add(&h.key, now_ms(), window, h.usage, limits)
            .await?;
        if added {
            release.push(h);
        } else {
            stalled.insert(h.key.clone());
            out.waiting += 1;
        }
    }
    let ids: Vec<&str> = release.iter().map(|h| h.queue_id.as_str()).collect();
    release_ids(postfix, &ids).await?;
    for h in &release {
        counters.unhold(h).await?;
        tracing::info!(
            "released held message {} of {} on {}",
            h.queue_id,
            h.key,
            postfix.server
        );
        out.released.push(h.queue_id.clone());
    }
    Ok(out)
}

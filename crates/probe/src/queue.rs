//! An MTA's Postfix queue, from `postqueue -j` run through its access (read by
//! `core::postfix`): sizes of each queue, the oldest message, and where the waiting mail is
//! going.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::outcome::{Failure, Run};

/// What the queue holds.
#[derive(Debug, Default, Clone)]
pub struct QueueState {
    /// Messages per queue (active, deferred, hold, incoming, maildrop).
    pub sizes: BTreeMap<String, u64>,
    /// All messages.
    pub total: u64,
    /// Age of the oldest message.
    pub oldest: Option<Duration>,
    /// Recipient domains with the most waiting mail.
    pub top_destinations: Vec<(String, u64)>,
}

/// Reads the queue of this Postfix.
pub async fn read(
    run: &mut Run,
    postfix: &mailfleet_core::postfix::Postfix,
    timeout: Duration,
) -> Result<QueueState, Failure> {
    let entries = run.step("postqueue", postfix.queue(timeout)).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut q = QueueState::default();
    let mut domains: BTreeMap<String, u64> = BTreeMap::new();
    for e in entries {
        *q.sizes.entry(e.queue_name).or_insert(0) += 1;
        q.total += 1;
        if let Some(t) = e.arrival_time {
            let age = Duration::from_secs(now.saturating_sub(t).max(0) as u64);
            q.oldest = Some(q.oldest.map_or(age, |o| o.max(age)));
        }
        for r in e.recipients {
            let d = r
                .address
                .rsplit_once('@')
                .map_or(r.address.as_str(), |(_, d)| d)
                .to_lowercase();
            *domains.entry(d).or_insert(0) += 1;
        }
    }
    let mut top: Vec<(String, u64)> = domains.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(5);
    q.top_destinations = top;
    Ok(q)
}

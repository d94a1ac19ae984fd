//! Compromised-account detection, off the request path: the engine reports each finished
//! message (who, from which client, whether it broke the quota) and this task flags an
//! account that (a) breaks its quota again and again or piles up held mail, (b) sends far
//! above its own usual rate, or (c) sends from many client networks in a short time. A flag
//! raises an alert and, if configured, a `compromised` send block.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use mailfleet_core::config::policy::DetectConfig;

use crate::counters::Counters;
use crate::error::PolicyError;

/// One finished message, as the engine saw it.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The account.
    pub key: String,
    /// The SMTP client's address, when known.
    pub client: Option<IpAddr>,
    /// Whether it went over quota.
    pub breached: bool,
    /// When (ms since the epoch).
    pub at_ms: u64,
}

/// What the detector is told.
#[derive(Debug, Clone)]
pub enum Seen {
    /// A finished message.
    Message(Observation),
    /// A recipient accepted (by the policy service at RCPT) or refused (from Postfix's log).
    Recipient {
        /// The account (the envelope sender for refused ones).
        key: String,
        /// Accepted or refused.
        accepted: bool,
        /// When.
        at_ms: u64,
    },
}

/// Why an account was flagged.
#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    /// The account.
    pub key: String,
    /// What it did.
    pub reason: String,
}

#[derive(Debug, Default)]
struct Track {
    /// When each breach episode began: the account went over its quota, and what it sent
    /// over it within a window after that is the same episode.
    breaches: VecDeque<u64>,
    networks: VecDeque<(u64, String)>,
    recipients: VecDeque<(u64, bool)>,
    rate_checked_ms: u64,
    flagged_ms: Option<u64>,
}

const DAY_MS: u64 = 86_400_000;
/// The history the usual rate is computed over (what the counters keep).
const BASELINE_MS: u64 = 7 * DAY_MS;

/// The network a client belongs to: /24 for IPv4, /64 for IPv6.
fn network(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v) => {
            let o = v.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(v) => {
            let s = v.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// The detector's memory.
pub struct Detector {
    config: DetectConfig,
    window_ms: u64,
    tracks: HashMap<String, Track>,
}

impl Detector {
    /// A detector for quotas counted over `window_ms`.
    pub fn new(config: DetectConfig, window_ms: u64) -> Self {
        Detector {
            config,
            window_ms,
            tracks: HashMap::new(),
        }
    }

    /// Looks at one recipient; a flag when many of the account's recipients in the last hour
    /// were refused (it sends to harvested or made-up addresses).
    pub fn recipient(&mut self, key: &str, accepted: bool, at_ms: u64) -> Option<Flag> {
        let c = &self.config;
        let t = self.tracks.entry(key.to_string()).or_default();
        if t.flagged_ms
            .is_some_and(|f| at_ms.saturating_sub(f) < DAY_MS)
        {
            return None;
        }
        t.recipients.push_back((at_ms, accepted));
        while t
            .recipients
            .front()
            .is_some_and(|(at, _)| at_ms.saturating_sub(*at) > 3_600_000)
        {
            t.recipients.pop_front();
        }
        let total = t.recipients.len() as u64;
        let refused = t.recipients.iter().filter(|(_, ok)| !ok).count() as u64;
        if accepted
            || refused < c.rejected_recipients
            || refused * 100 < c.rejected_share_percent * total
        {
            return None;
        }
        t.flagged_ms = Some(at_ms);
        Some(Flag {
            key: key.to_string(),
            reason: format!("{refused} of {total} recipients refused within an hour"),
        })
    }

    /// Looks at one observation; a flag when the account now looks compromised (at most
    /// once a day per account).
    pub async fn observe(
        &mut self,
        o: &Observation,
        counters: &dyn Counters,
    ) -> Result<Option<Flag>, PolicyError> {
        let c = &self.config;
        let t = self.tracks.entry(o.key.clone()).or_default();
        if t.flagged_ms
            .is_some_and(|f| o.at_ms.saturating_sub(f) < DAY_MS)
        {
            return Ok(None);
        }
        let mut reason = None;
        if o.breached {
            // One burst over the quota holds several messages: one episode, not one a message.
            let new_episode = t
                .breaches
                .back()
                .is_none_or(|start| o.at_ms.saturating_sub(*start) >= self.window_ms);
            if new_episode {
                t.breaches.push_back(o.at_ms);
            }
            while t
                .breaches
                .front()
                .is_some_and(|b| o.at_ms.saturating_sub(*b) > DAY_MS)
            {
                t.breaches.pop_front();
            }
            if t.breaches.len() >= c.repeat_breaches as usize {
                reason = Some(format!("{} quota breaches within a day", t.breaches.len()));
            } else {
                let held = counters.held(Some(&o.key)).await?.len();
                if held >= c.held_messages {
                    reason = Some(format!("{held} messages held for being over quota"));
                }
            }
        }
        if let Some(ip) = o.client.filter(|ip| !ip.is_loopback()) {
            let window = c.network_window.as_millis() as u64;
            t.networks
                .retain(|(at, _)| o.at_ms.saturating_sub(*at) <= window);
            let net = network(ip);
            t.networks.retain(|(_, n)| *n != net);
            t.networks.push_back((o.at_ms, net));
            if reason.is_none() && t.networks.len() >= c.networks {
                reason = Some(format!(
                    "sent from {} client networks within {} minutes",
                    t.networks.len(),
                    window / 60_000
                ));
            }
        }
        // The rate check reads a week of counters: at most once a minute per account.
        if reason.is_none() && o.at_ms.saturating_sub(t.rate_checked_ms) >= 60_000 {
            t.rate_checked_ms = o.at_ms;
            let now = counters
                .usage(&o.key, o.at_ms, self.window_ms)
                .await?
                .messages;
            let week = counters.usage(&o.key, o.at_ms, BASELINE_MS).await?.messages;
            let before = week.saturating_sub(now);
            // Only an account with a history has a usual rate.
            if before > 0 && now >= c.rate_min_messages {
                let windows = (BASELINE_MS / self.window_ms.max(1))
                    .saturating_sub(1)
                    .max(1);
                let usual = before as f64 / windows as f64;
                if now as f64 >= c.rate_factor * usual.max(1.0) {
                    reason = Some(format!(
                        "{now} messages in the last window against {usual:.1} usually"
                    ));
                }
            }
        }
        Ok(reason.map(|reason| {
            t.flagged_ms = Some(o.at_ms);
            Flag {
                key: o.key.clone(),
                reason,
            }
        }))
    }
}

/// Runs the detector on the engine's observations until they stop.
pub async fn run(
    engine: std::sync::Arc<crate::Engine>,
    mut observations: tokio::sync::mpsc::UnboundedReceiver<Seen>,
    directory: std::sync::Arc<dyn mailfleet_core::directory::Directory>,
) {
    let config = engine.config().detect.clone();
    let mut detector = Detector::new(config.clone(), engine.config().window.as_millis() as u64);
    while let Some(seen) = observations.recv().await {
        let flag = match seen {
            Seen::Message(o) => match detector.observe(&o, engine.counters().as_ref()).await {
                Ok(Some(f)) => f,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!("compromised-account detection: {e}");
                    continue;
                }
            },
            Seen::Recipient {
                key,
                accepted,
                at_ms,
            } => match detector.recipient(&key, accepted, at_ms) {
                Some(f) => f,
                None => continue,
            },
        };
        tracing::warn!("{} looks compromised: {}", flag.key, flag.reason);
        if config.block {
            match mailfleet_core::Address::parse(&flag.key) {
                Ok(address) => {
                    let block =
                        mailfleet_core::SendBlock::now(format!("compromised: {}", flag.reason));
                    match directory.set_send_block(&address, Some(&block)).await {
                        Ok(()) => {
                            engine.add_block(&flag.key, block);
                            // The block lifts itself once the password changes from this one.
                            if let Err(e) = crate::service::remember_password_at_block(
                                engine.counters().as_ref(),
                                directory.as_ref(),
                                &address,
                            )
                            .await
                            {
                                tracing::error!("recording {}'s password at block: {e}", flag.key);
                            }
                        }
                        Err(e) => tracing::error!("blocking {}: {e}", flag.key),
                    }
                }
                Err(e) => tracing::error!("blocking {}: {e}", flag.key),
            }
        }
        engine.raise(crate::engine::Alert::Compromised(flag));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::{Held, Limits, Usage};
    use crate::embedded::Embedded;
    use std::time::Duration;

    fn config() -> DetectConfig {
        DetectConfig {
            repeat_breaches: 3,
            held_messages: 4,
            rate_factor: 10.0,
            rate_min_messages: 20,
            networks: 3,
            network_window: Duration::from_secs(3600),
            rejected_recipients: 5,
            rejected_share_percent: 50,
            block: false,
        }
    }

    fn obs(key: &str, client: &str, breached: bool, at_ms: u64) -> Observation {
        Observation {
            key: key.into(),
            client: client.parse().ok(),
            breached,
            at_ms,
        }
    }

    fn store() -> (tempfile::TempDir, Embedded) {
        let dir = tempfile::tempdir().unwrap();
        let e = Embedded::open(&dir.path().join("p.db")).unwrap();
        (dir, e)
    }

    #[tokio::test]
    async fn one_burst_raises_a_compromised_account_flag() {
        let (_d, c) = store();
        let hour = 3_600_000;
        let mut d = Detector::new(config(), hour);
        let t = 1_000_000_000;
        // Eight at once against a quota of five: three held, one breach episode.
        for i in 0..3 {
            assert_eq!(
                d.observe(&obs("burst@x", "", true, t + i), &c)
                    .await
                    .unwrap(),
                None,
                "one burst is one breach"
            );
        }
        // Over quota again in the next two windows: three episodes within a day.
        assert_eq!(
            d.observe(&obs("burst@x", "", true, t + hour), &c)
                .await
                .unwrap(),
            None
        );
        let f = d
            .observe(&obs("burst@x", "", true, t + 2 * hour + 5), &c)
            .await
            .unwrap()
            .unwrap();
        assert!(f.reason.contains("3 quota breaches"), "{}", f.reason);
    }

    #[tokio::test]
    async fn repeated_breaches_flag_once() {
        let (_d, c) = store();
        let hour = 3_600_000;
        let mut d = Detector::new(config(), hour);
        let t = 1_000_000_000;
        assert_eq!(d.observe(&obs("a@x", "", true, t), &c).await.unwrap(), None);
        assert_eq!(
            d.observe(&obs("a@x", "", true, t + hour), &c)
                .await
                .unwrap(),
            None
        );
        let f = d
            .observe(&obs("a@x", "", true, t + 2 * hour), &c)
            .await
            .unwrap()
            .unwrap();
        assert!(f.reason.contains("3 quota breaches"), "{}", f.reason);
        assert_eq!(
            d.observe(&obs("a@x", "", true, t + 3 * hour), &c)
                .await
                .unwrap(),
            None,
            "once a day"
        );
        // Breaches spread over more than a day do not add up.
        for i in 0..5 {
            let f = d
                .observe(&obs("b@x", "", true, t + i * DAY_MS), &c)
                .await
                .unwrap();
            assert_eq!(f, None);
        }
    }

    #[tokio::test]
    async fn piled_up_held_mail_flags() {
        let (_d, c) = store();
        for i in 0..4 {
            c.hold(&Held {
                mta: None,
                queue_id: format!("Q{i}"),
                key: "h@x".into(),
                at_ms: i,
                usage: Usage::message(1, 1),
            })
            .await
            .unwrap();
        }
        let mut d = Detector::new(config(), 3_600_000);
        let f = d
            .observe(&obs("h@x", "", true, 10), &c)
            .await
            .unwrap()
            .unwrap();
        assert!(f.reason.contains("4 messages held"), "{}", f.reason);
    }

    #[tokio::test]
    async fn many_client_networks_flag_but_one_network_does_not() {
        let (_d, c) = store();
        let mut d = Detector::new(config(), 3_600_000);
        let t = 5_000_000;
        for (i, ip) in ["198.51.100.7", "198.51.100.9", "198.51.100.200"]
            .iter()
            .enumerate()
        {
            assert_eq!(
                d.observe(&obs("one@x", ip, false, t + i as u64), &c)
                    .await
                    .unwrap(),
                None
            );
        }
        assert_eq!(
            d.observe(&obs("n@x", "192.0.2.1", false, t), &c)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            d.observe(&obs("n@x", "203.0.113.1", false, t + 1), &c)
                .await
                .unwrap(),
            None
        );
        let f = d
            .observe(&obs("n@x", "2001:db8::1", false, t + 2), &c)
            .await
            .unwrap()
            .unwrap();
        assert!(f.reason.contains("3 client networks"), "{}", f.reason);
        // Networks seen longer ago than the window do not count.
        let mut d = Detector::new(config(), 3_600_000);
        for (i, ip) in ["192.0.2.1", "203.0.113.1", "198.51.100.1"]
            .iter()
            .enumerate()
        {
            let f = d
                .observe(&obs("slow@x", ip, false, t + i as u64 * 2 * 3_600_000), &c)
                .await
                .unwrap();
            assert_eq!(f, None);
        }
    }

    #[test]
    fn mostly_refused_recipients_flag() {
        let mut d = Detector::new(config(), 3_600_000);
        let t = 9_000_000;
        // Many refused, but most recipients fine: no flag.
        for i in 0..20 {
            assert_eq!(d.recipient("ok@x", true, t + i), None);
        }
        for i in 0..6 {
            assert_eq!(d.recipient("ok@x", false, t + 100 + i), None);
        }
        // Five refused of six: flagged.
        assert_eq!(d.recipient("bad@x", true, t), None);
        for i in 0..4 {
            assert_eq!(d.recipient("bad@x", false, t + 1 + i), None);
        }
        let f = d.recipient("bad@x", false, t + 10).unwrap();
        assert_eq!(f.reason, "5 of 6 recipients refused within an hour");
    }

    #[tokio::test]
    async fn sending_far_above_the_usual_rate_flags() {
        let (_d, c) = store();
        let hour = 3_600_000;
        let now = crate::counters::now_ms();
        let none = Limits::default();
        // A usual week: 2 messages a day for six days.
        for day in 1..7u64 {
            for k in 0..2 {
                c.try_add(
                    "r@x",
                    now - day * DAY_MS + k,
                    hour,
                    Usage::message(1, 1),
                    none,
                )
                .await
                .unwrap();
            }
        }
        // Now 25 in the last hour.
        for k in 0..25 {
            c.try_add("r@x", now - 1000 + k, hour, Usage::message(1, 1), none)
                .await
                .unwrap();
        }
        let mut d = Detector::new(config(), hour);
        let f = d
            .observe(&obs("r@x", "", false, now), &c)
            .await
            .unwrap()
            .unwrap();
        assert!(
            f.reason.contains("25 messages in the last window"),
            "{}",
            f.reason
        );
        // A new account with no history is not judged on its rate.
        for k in 0..25 {
            c.try_add("new@x", now - 1000 + k, hour, Usage::message(1, 1), none)
                .await
                .unwrap();
        }
        assert_eq!(
            d.observe(&obs("new@x", "", false, now), &c).await.unwrap(),
            None
        );
    }
}

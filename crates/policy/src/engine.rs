//! The decisions, shared by the policy server and the milter: who is sending (the quota key),
//! whether that account is send-blocked, and whether a finished message fits its quota. Over
//! quota the message is held (default) and recorded so the release loop can let it go later.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use mailfleet_core::SendBlock;
use mailfleet_core::config::policy::{BlockedAction, OverQuota, PolicyConfig, QuotaKey};

use crate::counters::{Counters, Held, Limits, Usage, now_ms};
use crate::error::PolicyError;

/// What to do with a message (or, before DATA, with a sender).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No objection.
    Pass,
    /// Accept and put on hold.
    Hold(String),
    /// Temporary refusal (4xx).
    Defer(String),
    /// Refusal (5xx).
    Reject(String),
}

/// A finished message as the MTA describes it.
#[derive(Debug, Clone, Default)]
pub struct Message<'a> {
    /// The SASL user, when the client authenticated.
    pub sasl_user: Option<&'a str>,
    /// The envelope sender.
    pub sender: Option<&'a str>,
    /// Recipients.
    pub recipients: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// Postfix's queue ID.
    pub queue_id: Option<&'a str>,
    /// The SMTP client's address.
    pub client: Option<&'a str>,
}

/// A quota breach, for the alert channel.
#[derive(Debug, Clone)]
pub struct Breach {
    /// The account.
    pub key: String,
    /// Which limit.
    pub limit: &'static str,
    /// Usage before this message.
    pub usage: Usage,
    /// What was done.
    pub action: OverQuota,
}

/// What deserves an admin's attention.
#[derive(Debug, Clone)]
pub enum Alert {
    /// An account went over its quota (once per account per window).
    Quota(Breach),
    /// The state store failed (once per outage); mail passes or waits by config.
    State(String),
    /// The state store answers again after an outage.
    StateRecovered,
    /// An account looks compromised.
    Compromised(crate::detect::Flag),
    /// A block was lifted because the account's password changed.
    Unblocked(String),
}

/// The decision engine.
pub struct Engine {
    config: PolicyConfig,
    counters: Arc<dyn Counters>,
    blocks: RwLock<HashMap<String, SendBlock>>,
    alerted: Mutex<HashMap<String, u64>>,
    alerts: tokio::sync::mpsc::UnboundedSender<Alert>,
    observer: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<crate::detect::Seen>>,
    dnsbl: Option<crate::dnsbl::Dnsbl>,
    /// Queue IDs of messages counted lately, with their account: a later rejection in
    /// Postfix's log gives the count back.
    counted: Mutex<HashMap<String, (String, u64)>>,
    /// Whether the state store is failing (an outage alarmed, its recovery not yet seen).
    state_down: std::sync::atomic::AtomicBool,
    /// The MTA whose hold queue is released, with its connection kept between rounds.
    postfix: mailfleet_core::postfix::Postfix,
}

impl Engine {
    /// An engine over these counters; what deserves an alert goes to `alerts`.
    pub fn new(
        config: PolicyConfig,
        counters: Arc<dyn Counters>,
        alerts: tokio::sync::mpsc::UnboundedSender<Alert>,
    ) -> Self {
        Engine {
            counters,
            blocks: RwLock::new(HashMap::new()),
            alerted: Mutex::new(HashMap::new()),
            alerts,
            observer: std::sync::OnceLock::new(),
            dnsbl: crate::dnsbl::Dnsbl::new(&config),
            counted: Mutex::new(HashMap::new()),
            state_down: std::sync::atomic::AtomicBool::new(false),
            postfix: crate::release::postfix_of(&config, &mailfleet_remote::Reach::new()),
            config,
        }
    }

    /// The DNSBL verdict on a client address: refused once the weights of the lists that
    /// list it reach the threshold.
    pub async fn client_check(&self, client: Option<&str>) -> Option<Verdict> {
        let d = self.dnsbl.as_ref()?;
        let ip: std::net::IpAddr = client?.parse().ok()?;
        let (score, zones) = d.check(ip).await;
        if score < self.config.dnsbl_threshold {
            return None;
        }
        let text = format!(
            "5.7.1 Service unavailable; client [{ip}] blocked using {}",
            zones.join(", ")
        );
        Some(if self.config.dnsbl_defer {
            Verdict::Defer(text.replacen("5.7.1", "4.7.1", 1))
        } else {
            Verdict::Reject(text)
        })
    }

    /// DNSBL hits per list so far (empty without lists).
    pub fn dnsbl_hits(&self) -> Vec<crate::dnsbl::ListHits> {
        self.dnsbl.as_ref().map(|d| d.hits()).unwrap_or_default()
    }

    /// Sends every finished message to the compromised-account detector from now on.
    pub fn observe_with(&self, tx: tokio::sync::mpsc::UnboundedSender<crate::detect::Seen>) {
        let _ = self.observer.set(tx);
    }

    /// A recipient the policy service accepted at RCPT (for the refused-recipients check).
    pub fn recipient_accepted(&self, key: &str) {
        if let Some(tx) = self.observer.get() {
            let _ = tx.send(crate::detect::Seen::Recipient {
                key: key.to_string(),
                accepted: true,
                at_ms: now_ms(),
            });
        }
    }

    /// Acts on a line of Postfix's log: gives back the count of a message rejected after it
    /// was counted; reports a recipient refused at RCPT to the detector.
    pub async fn log_event(&self, event: crate::logwatch::LogEvent) -> Result<(), PolicyError> {
        match event {
            crate::logwatch::LogEvent::Rejected { queue_id } => {
                let counted = self
                    .counted
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&queue_id);
                if let Some((key, _)) = counted {
                    self.counters.refund(&key, &queue_id).await?;
                    tracing::info!(
                        "{queue_id} of {key} was rejected after counting: count given back"
                    );
                }
            }
            crate::logwatch::LogEvent::RecipientRejected { sender } => {
                if let Some(tx) = self.observer.get() {
                    let _ = tx.send(crate::detect::Seen::Recipient {
                        key: sender,
                        accepted: false,
                        at_ms: now_ms(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Raises an alert.
    pub fn raise(&self, alert: Alert) {
        let _ = self.alerts.send(alert);
    }

    /// Adds one block at once (the detector's), before the next refresh from the directory.
    pub fn add_block(&self, key: &str, block: SendBlock) {
        self.blocks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_ascii_lowercase(), block);
    }

    fn observed(&self, key: &str, client: Option<&str>, breached: bool) {
        if let Some(tx) = self.observer.get() {
            let _ = tx.send(crate::detect::Seen::Message(crate::detect::Observation {
                key: key.to_string(),
                client: client.and_then(|c| c.parse().ok()),
                breached,
                at_ms: now_ms(),
            }));
        }
    }

    /// The verdict when the state store failed: pass uncounted (fail-open, the default) or
    /// ask the client to retry (fail-closed); one alert per outage.
    pub fn state_failed(&self, e: &PolicyError) -> Verdict {
        use std::sync::atomic::Ordering;
        if !self.state_down.swap(true, Ordering::Relaxed) {
            tracing::error!("policy state: {e}");
            let _ = self.alerts.send(Alert::State(e.to_string()));
        } else {
            tracing::debug!("policy state: {e}");
        }
        if self.config.fail_closed {
            Verdict::Defer(
                "4.3.0 sending limits cannot be checked right now, try again later".into(),
            )
        } else {
            Verdict::Pass
        }
    }

    /// Whether the state store is failing: an outage was alarmed and no recovery seen yet.
    pub fn state_is_down(&self) -> bool {
        self.state_down.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Asks a failing state store whether it answers again; sends the recovery when it does.
    pub async fn check_state(&self) {
        if !self.state_is_down() {
            return;
        }
        if self.counters.ping().await.is_ok()
            && self
                .state_down
                .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::info!("policy state: answering again");
            let _ = self.alerts.send(Alert::StateRecovered);
        }
    }

    /// Whether no alert went out under `key` in the last `period_ms` (and records one now).
    fn first_in(&self, key: &str, period_ms: u64) -> bool {
        let now = now_ms();
        let mut alerted = self.alerted.lock().unwrap_or_else(|p| p.into_inner());
        if alerted
            .get(key)
            .is_some_and(|last| now.saturating_sub(*last) < period_ms)
        {
            return false;
        }
        alerted.insert(key.to_string(), now);
        true
    }

    /// The settings.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// The MTA's Postfix whose hold queue this server releases.
    pub fn postfix(&self) -> &mailfleet_core::postfix::Postfix {
        &self.postfix
    }

    /// The counters.
    pub fn counters(&self) -> &Arc<dyn Counters> {
        &self.counters
    }

    /// Replaces the set of send-blocked accounts (from the directory).
    pub fn set_blocks(&self, blocks: HashMap<String, SendBlock>) {
        // A poisoned lock only means a reader panicked; the map itself is whole.
        *self.blocks.write().unwrap_or_else(|p| p.into_inner()) = blocks;
    }

    /// The account a message counts against: lower-cased, `None` for the null sender.
    pub fn key(&self, sasl_user: Option<&str>, sender: Option<&str>) -> Option<String> {
        let who = match self.config.key {
            QuotaKey::Sasl => sasl_user.or(sender),
            QuotaKey::Sender => sender,
        }?;
        let who = who.trim().trim_start_matches('<').trim_end_matches('>');
        (!who.is_empty()).then(|| who.to_ascii_lowercase())
    }

    /// Whether the key is send-blocked, and what to do then.
    pub fn blocked(&self, key: &str) -> Option<Verdict> {
        let blocks = self.blocks.read().unwrap_or_else(|p| p.into_inner());
        let b = blocks.get(key)?;
        let text = format!(
            "5.7.1 <{key}>: sending is blocked for this mailbox: {}",
            b.reason
        );
        Some(match self.config.blocked {
            BlockedAction::Reject => Verdict::Reject(text),
            BlockedAction::Hold => Verdict::Hold(format!("mailfleet: {key} is send-blocked")),
        })
    }

    /// The limits that apply to `key` (`None`: exempt or no rule).
    pub fn limits(&self, key: &str) -> Option<(Limits, OverQuota)> {
        let rule = self.config.rule_for(key)?;
        (!rule.exempt).then_some((
            Limits {
                messages: rule.messages,
                recipients: rule.recipients,
                bytes: rule.bytes,
            },
            rule.action,
        ))
    }

    /// The verdict on a finished message, counting it when it passes.
    pub async fn end_of_message(&self, m: &Message<'_>) -> Result<Verdict, PolicyError> {
        let Some(key) = self.key(m.sasl_user, m.sender) else {
            return Ok(Verdict::Pass);
        };
        if let Some(v) = self.blocked(&key) {
            return Ok(v);
        }
        let usage = Usage::message(m.recipients.max(1), m.bytes);
        let window = self.config.window.as_millis() as u64;
        let now = now_ms();
        let Some((limits, action)) = self.limits(&key) else {
            self.counters
                .try_add_tagged(&key, now, window, usage, Limits::default(), m.queue_id)
                .await?;
            self.observed(&key, m.client, false);
            self.remember_counted(m.queue_id, &key, now, window);
            return Ok(Verdict::Pass);
        };
        let (added, before) = self
            .counters
            .try_add_tagged(&key, now, window, usage, limits, m.queue_id)
            .await?;
        self.observed(&key, m.client, !added);
        if added {
            self.remember_counted(m.queue_id, &key, now, window);
            return Ok(Verdict::Pass);
        }
        let limit = limits.exceeded(before.plus(usage)).unwrap_or("messages");
        self.alert(Breach {
            key: key.clone(),
            limit,
            usage: before,
            action,
        });
        Ok(match action {
            OverQuota::Hold => {
                if let Some(q) = m.queue_id {
                    self.counters
                        .hold(&Held {
                            mta: self.config.mta.clone(),
                            queue_id: q.to_string(),
                            key: key.clone(),
                            at_ms: now,
                            usage,
                        })
                        .await?;
                }
                Verdict::Hold(format!(
                    "mailfleet: {key} over its {limit} quota, held for later delivery"
                ))
            }
            OverQuota::DeferIfPermit => Verdict::Defer(format!(
                "4.7.1 <{key}>: sending quota ({limit}) reached, try again later"
            )),
            OverQuota::Reject => {
                Verdict::Reject(format!("5.7.1 <{key}>: sending quota ({limit}) reached"))
            }
        })
    }

    fn remember_counted(&self, queue_id: Option<&str>, key: &str, now: u64, window: u64) {
        let Some(q) = queue_id else { return };
        let mut counted = self.counted.lock().unwrap_or_else(|p| p.into_inner());
        // Rejections are logged within seconds of counting; a window's worth is plenty.
        if counted.len() > 100_000 {
            counted.retain(|_, (_, at)| now.saturating_sub(*at) < window);
        }
        counted.insert(q.to_string(), (key.to_string(), now));
    }

    /// Sends a breach to the alert channel, at most once per account per window.
    fn alert(&self, b: Breach) {
        if self.first_in(&b.key, self.config.window.as_millis() as u64) {
            // No receiver (a test without alerts) is fine.
            let _ = self.alerts.send(Alert::Quota(b));
        }
    }
}

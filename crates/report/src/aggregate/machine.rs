//! One host's profile: traffic per day, hour and weekday, sizes, recipients, destinations.

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use chrono::NaiveDate;

use super::clock::When;
use super::hist::Sizes;
use crate::event::{Status, Text};
use crate::report::{InOut, Machine};

#[derive(Debug, Default)]
pub(super) struct MachineAcc {
    accounts: HashSet<Text>,
    received: u64,
    delivered: u64,
    per_day: BTreeMap<NaiveDate, InOut>,
    per_hour: HashMap<(NaiveDate, u8), u64>,
    by_hour: [u64; 24],
    by_weekday: [u64; 7],
    sizes: Sizes,
    recipients: u64,
    messages: u64,
    max_recipients: u64,
    attempts: u64,
    deferrals: u64,
    bounces: u64,
    destinations: HashMap<Text, u64>,
}

impl MachineAcc {
    pub(super) fn received(&mut self, when: When) {
        self.received += 1;
        self.per_day.entry(when.day).or_default().received += 1;
        *self
            .per_hour
            .entry((when.day, when.hour() as u8))
            .or_insert(0) += 1;
        self.by_hour[when.hour()] += 1;
        self.by_weekday[when.weekday()] += 1;
    }

    pub(super) fn queued(&mut self, size: u64, nrcpt: u32) {
        self.sizes.add(size);
        self.messages += 1;
        self.recipients += u64::from(nrcpt);
        self.max_recipients = self.max_recipients.max(u64::from(nrcpt));
    }

    pub(super) fn delivery(&mut self, when: When, to: &str, status: Status) {
        self.attempts += 1;
        match status {
            Status::Sent => {
                self.delivered += 1;
                self.per_day.entry(when.day).or_default().delivered += 1;
                let domain = to.rsplit_once('@').map_or(to, |(_, d)| d);
                match self.destinations.get_mut(domain) {
                    Some(n) => *n += 1,
                    None => {
                        self.destinations.insert(domain.into(), 1);
                    }
                }
            }
            Status::Deferred => self.deferrals += 1,
            Status::Bounced => self.bounces += 1,
            Status::Other => {}
        }
    }

    pub(super) fn account(&mut self, user: &Text) {
        if !self.accounts.contains(user) {
            self.accounts.insert(user.clone());
        }
    }

    /// Whether any line counted here: hosts are registered before their events are read.
    pub(super) fn touched(&self) -> bool {
        self.received > 0 || self.messages > 0 || self.attempts > 0 || !self.accounts.is_empty()
    }

    pub(super) fn finish(self, host: &str) -> Machine {
        let rate = |n: u64| {
            if self.attempts == 0 {
                0.0
            } else {
                n as f64 / self.attempts as f64
            }
        };
        let peak_hour = self
            .per_hour
            .iter()
            .max_by_key(|((d, h), n)| (**n, std::cmp::Reverse((*d, *h))))
            .map(|((d, h), n)| (format!("{d} {h:02}:00"), *n));
        let peak_day = self
            .per_day
            .iter()
            .max_by_key(|(d, io)| (io.received, std::cmp::Reverse(**d)))
            .filter(|(_, io)| io.received > 0)
            .map(|(d, io)| (d.to_string(), io.received));
        let mut top: Vec<(String, u64)> = self
            .destinations
            .into_iter()
            .map(|(d, n)| (d.into(), n))
            .collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(10);
        Machine {
            host: host.to_string(),
            accounts: self.accounts.len() as u64,
            received: self.received,
            delivered: self.delivered,
            per_day: self
                .per_day
                .into_iter()
                .map(|(d, io)| (d.to_string(), io))
                .collect(),
            sizes: self.sizes.stats(),
            recipients_per_message: if self.messages == 0 {
                0.0
            } else {
                self.recipients as f64 / self.messages as f64
            },
            max_recipients: self.max_recipients,
            by_hour: self.by_hour,
            by_weekday: self.by_weekday,
            peak_hour,
            peak_day,
            deferral_rate: rate(self.deferrals),
            bounce_rate: rate(self.bounces),
            top_destinations: top,
        }
    }
}

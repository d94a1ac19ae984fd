//! One account's profile: what it sent and received, when it is active, how it logs in.

use std::collections::BTreeMap;

use rustc_hash::FxHashSet as HashSet;
use std::hash::{Hash, Hasher};

use chrono::NaiveDate;

use super::clock::When;
use crate::event::Text;
use crate::report::User;

/// Distinct login addresses kept per day: enough to see "many".
const IPS_PER_DAY: usize = 64;

#[derive(Debug, Default)]
pub(super) struct UserAcc {
    pub(super) sent: u64,
    sent_internal: u64,
    sent_external: u64,
    bytes_sent: u64,
    pub(super) received: u64,
    pub(super) bytes_received: u64,
    /// Hashes, not addresses: a bulk sender may write to very many.
    recipients: HashSet<u64>,
    active_hours: [u64; 24],
    logins: BTreeMap<Text, u64>,
    login_addresses: BTreeMap<Text, u64>,
    pub(super) failed_logins: u64,
    pub(super) session_bytes_out: u64,
    pub(super) daily_sent: BTreeMap<NaiveDate, u64>,
    pub(super) daily_ips: BTreeMap<NaiveDate, HashSet<Text>>,
}

impl UserAcc {
    pub(super) fn activity(&mut self, when: When) {
        self.active_hours[when.hour()] += 1;
    }

    pub(super) fn sent(&mut self, when: When, size: u64) {
        self.sent += 1;
        self.bytes_sent += size;
        *self.daily_sent.entry(when.day).or_insert(0) += 1;
        self.activity(when);
    }

    pub(super) fn recipient(&mut self, to: &str, internal: bool) {
        if internal {
            self.sent_internal += 1;
        } else {
            self.sent_external += 1;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        to.hash(&mut h);
        self.recipients.insert(h.finish());
    }

    pub(super) fn login(&mut self, when: When, proto: &Text, ip: Text) {
        self.activity(when);
        *self.logins.entry(proto.clone()).or_insert(0) += 1;
        let ips = self.daily_ips.entry(when.day).or_default();
        if ips.len() < IPS_PER_DAY {
            ips.insert(ip.clone());
        }
        *self.login_addresses.entry(ip).or_insert(0) += 1;
    }

    pub(super) fn finish(self, account: &str) -> User {
        User {
            account: account.to_string(),
            sent: self.sent,
            sent_internal: self.sent_internal,
            sent_external: self.sent_external,
            bytes_sent: self.bytes_sent,
            received: self.received,
            bytes_received: self.bytes_received,
            distinct_recipients: self.recipients.len() as u64,
            active_hours: self.active_hours,
            logins: self
                .logins
                .into_iter()
                .map(|(k, v)| (k.into(), v))
                .collect(),
            login_addresses: self
                .login_addresses
                .into_iter()
                .map(|(k, v)| (k.into(), v))
                .collect(),
            failed_logins: self.failed_logins,
            session_bytes_out: self.session_bytes_out,
        }
    }
}

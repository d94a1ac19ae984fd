//! The spam funnel: connections, DNSBL and other rejections, accepted mail, and what the
//! content filters made of it, with each list's and rule's hits and unique hits.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashMap as HashMap;

use crate::event::{Action, Kind, Text, Verdict};
use crate::report::{Funnel, Hits};

#[derive(Debug, Default)]
pub(super) struct FunnelAcc {
    f: Funnel,
    screen_connections: u64,
    smtpd_connections: u64,
    /// Lists that listed a client since its last postscreen connect.
    pending: HashMap<Text, BTreeSet<Text>>,
    rules: HashMap<Text, Hits>,
}

fn tally(listed: &mut BTreeMap<String, Hits>, lists: BTreeSet<Text>) {
    let unique = lists.len() == 1;
    for l in lists {
        let h = listed.entry(l.into()).or_default();
        h.hits += 1;
        if unique {
            h.unique += 1;
        }
    }
}

impl FunnelAcc {
    /// Whether [`FunnelAcc::add`] counts this kind: most events (queue, delivery, Dovecot)
    /// are settled by a tag compare, without the call.
    #[inline]
    pub(super) fn counts(k: &Kind) -> bool {
        matches!(
            k,
            Kind::ScreenConnect { .. }
                | Kind::Connect { .. }
                | Kind::DnsblHit { .. }
                | Kind::ScreenList { .. }
                | Kind::Reject(_)
                | Kind::Client { .. }
                | Kind::Scan { .. }
        )
    }

    pub(super) fn add(&mut self, k: &Kind) {
        let f = &mut self.f;
        match k {
            Kind::ScreenConnect { ip } => {
                self.screen_connections += 1;
                if let Some(lists) = self.pending.remove(ip) {
                    tally(&mut f.listed_by, lists);
                }
            }
            Kind::Connect { .. } => self.smtpd_connections += 1,
            Kind::DnsblHit { ip, list } => {
                self.pending
                    .entry(ip.clone())
                    .or_default()
                    .insert(list.clone());
            }
            Kind::ScreenList { white: true, .. } => f.whitelisted += 1,
            Kind::ScreenList { white: false, .. } => f.blacklisted += 1,
            Kind::Reject(r) if matches!(r.action, Action::Reject | Action::MilterReject) => {
                match &r.dnsbl {
                    Some(list) => {
                        f.dnsbl_rejected += 1;
                        *f.rejected_by_list.entry(list.to_string()).or_insert(0) += 1;
                    }
                    None => f.other_rejected += 1,
                }
            }
            Kind::Client { .. } => f.accepted += 1,
            Kind::Scan { verdict, rules, .. } => match verdict {
                Verdict::Clean => {
                    f.scanned += 1;
                    f.clean += 1;
                }
                Verdict::Spam => {
                    f.scanned += 1;
                    f.spam += 1;
                    let unique = rules.len() == 1;
                    for r in rules {
                        let h = self.rules.entry(r.clone()).or_default();
                        h.hits += 1;
                        if unique {
                            h.unique += 1;
                        }
                    }
                }
                Verdict::Whitelisted => f.whitelisted += 1,
                Verdict::Blacklisted => f.blacklisted += 1,
                Verdict::TooLarge => f.too_large += 1,
                Verdict::NotScanned => f.not_scanned += 1,
            },
            _ => {}
        }
    }

    pub(super) fn finish(mut self) -> Funnel {
        for (_, lists) in std::mem::take(&mut self.pending) {
            tally(&mut self.f.listed_by, lists);
        }
        self.f.connections = if self.screen_connections > 0 {
            self.screen_connections
        } else {
            self.smtpd_connections
        };
        self.f.rules = self.rules.into_iter().map(|(k, v)| (k.into(), v)).collect();
        self.f
    }
}

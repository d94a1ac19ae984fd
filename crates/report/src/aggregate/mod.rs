//! Folds events, in log order, into the report: joins the lines of one message by queue ID
//! and forgets a message when qmgr removes it, so memory follows the messages in flight and
//! the distinct users and hosts, not the log's size.

mod anomaly;
mod clock;
mod funnel;
mod hist;
mod machine;
mod totals;
mod user;

use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

pub use clock::{Clock, When};

use crate::event::{Event, Kind, Qid, Status, Text, Unknown};
use crate::report::{Report, Unparsed};
use funnel::FunnelAcc;
use machine::MachineAcc;
use totals::TotalsAcc;
use user::UserAcc;

/// Where a message came from, until qmgr's first `from=` line for it.
#[derive(Debug, Clone)]
enum Origin {
    /// The sendmail binary.
    Pickup,
    /// An SMTP client, by pflogsumm's "domain" of its host name.
    Client(Text),
}

/// A message in flight.
#[derive(Debug, Default)]
struct Msg {
    size: Option<u64>,
    origin: Option<Origin>,
    /// The account that sent it: SASL user, or the sender of a local submission.
    user: Option<Text>,
    deferred: bool,
}

/// Services that deliver into a mailbox on this fleet (the rest relay out).
fn internal(service: &str) -> bool {
    matches!(service, "lmtp" | "local" | "virtual" | "pipe")
}

/// The aggregator.
pub struct Aggregator {
    clock: Clock,
    msgs: HashMap<Qid, Msg>,
    totals: TotalsAcc,
    /// Machines by host name: an index into `machine_accs`, looked up once per chunk.
    machines: HashMap<Arc<str>, usize>,
    machine_accs: Vec<MachineAcc>,
    /// The last client and its pflogsumm domain: clients repeat (relays, a busy sender).
    last_client: Option<(Text, Text)>,
    users: HashMap<Text, UserAcc>,
    funnel: FunnelAcc,
    sizes: hist::Sizes,
    unparsed: HashMap<Unknown, u64>,
    unparsed_total: u64,
}

impl Aggregator {
    /// An empty aggregator; `clock` supplies years to yearless lines.
    pub fn new(clock: Clock) -> Self {
        Aggregator {
            clock,
            msgs: HashMap::default(),
            totals: TotalsAcc::default(),
            machines: HashMap::default(),
            machine_accs: Vec::new(),
            last_client: None,
            users: HashMap::default(),
            funnel: FunnelAcc::default(),
            sizes: hist::Sizes::default(),
            unparsed: HashMap::default(),
            unparsed_total: 0,
        }
    }

    fn unparsed(&mut self, kind: Unknown) {
        self.add_unparsed(kind, 1);
    }

    /// Counts `n` lines not understood.
    pub fn add_unparsed(&mut self, kind: Unknown, n: u64) {
        self.unparsed_total += n;
        *self.unparsed.entry(kind).or_insert(0) += n;
    }

    /// The index of a host's machine, added if new.
    fn machine_slot(&mut self, host: &Arc<str>) -> usize {
        if let Some(&i) = self.machines.get(host) {
            return i;
        }
        self.machine_accs.push(MachineAcc::default());
        let i = self.machine_accs.len() - 1;
        self.machines.insert(Arc::clone(host), i);
        i
    }

    fn machine(&mut self, slot: usize) -> &mut MachineAcc {
        &mut self.machine_accs[slot]
    }

    /// pflogsumm's domain of a client, from a one-entry cache.
    fn client_domain(&mut self, client: &Text) -> Text {
        if let Some((c, d)) = &self.last_client
            && c == client
        {
            return d.clone();
        }
        let d = totals::gimme_domain(client);
        self.last_client = Some((client.clone(), d.clone()));
        d
    }

    /// Folds in the events of one chunk, in order; `hosts` names their hosts.
    pub fn add_events(&mut self, events: impl IntoIterator<Item = Event>, hosts: &[Arc<str>]) {
        // A chunk names a handful of hosts: find their machines once, not per event.
        let slots: Vec<usize> = hosts.iter().map(|h| self.machine_slot(h)).collect();
        for e in events {
            self.add(e, &slots);
        }
    }

    fn user(&mut self, account: &Text) -> &mut UserAcc {
        if !self.users.contains_key(account) {
            self.users.insert(account.clone(), UserAcc::default());
        }
        self.users
            .get_mut(account)
            .unwrap_or_else(|| unreachable!())
    }

    /// Folds one event in; `slots` gives its host's machine.
    fn add(&mut self, e: Event, slots: &[usize]) {
        let Some(&host) = slots.get(e.host as usize) else {
            return self.unparsed(Unknown::NotSyslog);
        };
        if let Kind::Unparsed { kind } = e.kind {
            return self.unparsed(kind);
        }
        if matches!(e.kind, Kind::Ignored) {
            return;
        }
        let Some(when) = self.clock.resolve(e.stamp) else {
            return self.unparsed(Unknown::ImpossibleDate);
        };
        if FunnelAcc::counts(&e.kind) {
            self.funnel.add(&e.kind);
        }
        match e.kind {
            Kind::Client {
                qid,
                client,
                sasl_user,
                ..
            } => {
                self.totals.received();
                self.machine(host).received(when);
                if let Some(u) = &sasl_user {
                    self.user(u).activity(when);
                }
                let domain = self.client_domain(&client);
                let m = self.msgs.entry(qid).or_default();
                m.origin = Some(Origin::Client(domain));
                m.user = sasl_user;
            }
            Kind::Pickup { qid, .. } => {
                self.totals.received();
                self.machine(host).received(when);
                let m = self.msgs.entry(qid).or_default();
                m.origin = Some(Origin::Pickup);
            }
            Kind::QueueFrom {
                qid,
                sender,
                size,
                nrcpt,
            } => self.queue_from(host, when, qid, sender, size, nrcpt),
            Kind::Delivery {
                qid,
                service,
                to,
                status,
                forwarded,
                ..
            } => self.delivery(host, when, &qid, service, to, status, forwarded),
            Kind::Reject(r) => self.totals.reject(r.action),
            Kind::Removed { qid } => {
                self.msgs.remove(&qid);
            }
            Kind::Login { proto, user, ip } => {
                self.machine(host).account(&user);
                self.user(&user).login(when, &proto, ip);
            }
            Kind::LoginFailed {
                user: Some(user), ..
            } => self.user(&user).failed_logins += 1,
            Kind::Logout {
                user, bytes_out, ..
            } => self.user(&user).session_bytes_out += bytes_out,
            Kind::Stored { user } => self.machine(host).account(&user),
            _ => {}
        }
    }

    fn queue_from(
        &mut self,
        host: usize,
        when: When,
        qid: Qid,
        sender: Text,
        size: u64,
        nrcpt: u32,
    ) {
        let m = self.msgs.entry(qid).or_default();
        // qmgr logs from= again each time a deferred message is retried: count the first.
        if m.size.is_some() {
            return;
        }
        m.size = Some(size);
        let origin = m.origin.take();
        let sender = if sender.is_empty() {
            Text::from("from=<>")
        } else {
            sender
        };
        if let Some(origin) = &origin {
            self.totals.sender(&sender, origin, size);
        }
        if m.user.is_none() && matches!(origin, Some(Origin::Pickup)) && &*sender != "from=<>" {
            m.user = Some(sender);
        }
        let user = m.user.clone();
        self.sizes.add(size);
        self.machine(host).queued(size, nrcpt);
        if let Some(u) = user {
            self.user(&u).sent(when, size);
        }
    }

    #[allow(clippy::too_many_arguments)] // one delivery line's fields
    fn delivery(
        &mut self,
        host: usize,
        when: When,
        qid: &Qid,
        service: &str,
        to: Text,
        status: Status,
        forwarded: bool,
    ) {
        let m = self.msgs.entry(*qid).or_default();
        let first_deferral = status == Status::Deferred && !m.deferred;
        if status == Status::Deferred {
            m.deferred = true;
        }
        let size = m.size;
        let sender = m.user.clone();
        self.totals
            .delivery(&to, status, forwarded, first_deferral, size);
        self.machine(host).delivery(when, &to, status);
        if status != Status::Sent || forwarded {
            return;
        }
        if let Some(s) = sender {
            self.user(&s).recipient(&to, internal(service));
        }
        if internal(service) {
            self.machine(host).account(&to);
            let u = self.user(&to);
            u.received += 1;
            u.bytes_received += size.unwrap_or(0);
        }
    }

    /// The report.
    pub fn finish(self) -> Report {
        // Slots are 0..n, one per host: in slot order the names line up with the profiles.
        let mut names: Vec<(usize, Arc<str>)> =
            self.machines.into_iter().map(|(h, i)| (i, h)).collect();
        names.sort_unstable_by_key(|(i, _)| *i);
        let mut machines: Vec<_> = names
            .into_iter()
            .zip(self.machine_accs)
            // A host whose lines the profile does not count (rejects only, say) is not one.
            .filter(|(_, m)| m.touched())
            .map(|((_, h), m)| m.finish(&h))
            .collect();
        machines.sort_by(|a, b| a.host.cmp(&b.host));
        let anomalies = anomaly::find(&self.users);
        let mut users: Vec<_> = self.users.into_iter().map(|(a, u)| u.finish(&a)).collect();
        users.sort_by(|a, b| a.account.cmp(&b.account));
        Report {
            totals: self.totals.finish(),
            machines,
            users,
            funnel: self.funnel.finish(),
            anomalies,
            sizes: self.sizes.classes(),
            unparsed: Unparsed {
                total: self.unparsed_total,
                by_kind: self
                    .unparsed
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            },
            input: Default::default(),
        }
    }
}

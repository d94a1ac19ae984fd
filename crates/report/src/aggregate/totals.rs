//! pflogsumm's grand totals, counted by its rules.

use rustc_hash::FxHashSet as HashSet;

use super::Origin;
use crate::event::{Action, Status, Text};
use crate::report::Totals;

#[derive(Debug, Default)]
pub(super) struct TotalsAcc {
    t: Totals,
    senders: HashSet<Text>,
    sending_domains: HashSet<Text>,
    recipients: HashSet<Text>,
    recipient_domains: HashSet<Text>,
}

impl TotalsAcc {
    pub(super) fn received(&mut self) {
        self.t.received += 1;
    }

    /// First `from=` of a received message.
    pub(super) fn sender(&mut self, sender: &Text, origin: &Origin, size: u64) {
        let domain = match sender.split_once('@') {
            Some((_, d)) => Text::from(d),
            None => match origin {
                Origin::Pickup => sender.clone(),
                Origin::Client(d) => d.clone(),
            },
        };
        self.sending_domains.insert(domain);
        if !self.senders.contains(sender) {
            self.senders.insert(sender.clone());
        }
        self.t.bytes_received += size;
    }

    pub(super) fn delivery(
        &mut self,
        to: &Text,
        status: Status,
        forwarded: bool,
        first_deferral: bool,
        size: Option<u64>,
    ) {
        match status {
            Status::Sent if forwarded => self.t.forwarded += 1,
            Status::Sent => {
                self.t.delivered += 1;
                self.t.bytes_delivered += size.unwrap_or(0);
                if !self.recipients.contains(to) {
                    self.recipients.insert(to.clone());
                }
                // pflogsumm: s/^[^@]+\@// (an address starting with '@' keeps it).
                let domain = match to.find('@') {
                    Some(i) if i > 0 => &to[i + 1..],
                    _ => to,
                };
                if !self.recipient_domains.contains(domain) {
                    self.recipient_domains.insert(domain.into());
                }
            }
            Status::Deferred => {
                self.t.deferrals += 1;
                if first_deferral {
                    self.t.deferred += 1;
                }
            }
            Status::Bounced => self.t.bounced += 1,
            Status::Other => {}
        }
    }

    pub(super) fn reject(&mut self, action: Action) {
        match action {
            Action::Reject => self.t.rejected += 1,
            Action::RejectWarning | Action::Warning => self.t.reject_warnings += 1,
            Action::Hold => self.t.held += 1,
            Action::Discard => self.t.discarded += 1,
            // smtpd's milter rejects: pflogsumm's pattern does not match them.
            Action::MilterReject => {}
        }
    }

    pub(super) fn finish(mut self) -> Totals {
        self.t.senders = self.senders.len() as u64;
        self.t.sending_domains = self.sending_domains.len() as u64;
        self.t.recipients = self.recipients.len() as u64;
        self.t.recipient_domains = self.recipient_domains.len() as u64;
        self.t
    }
}

/// pflogsumm's `gimme_domain`: `mail.host.example.com[1.2.3.4]` becomes `example.com`
/// (`host.co.uk` style names keep three labels); `unknown[1.2.3.4]` becomes the address.
pub(super) fn gimme_domain(client: &str) -> Text {
    let (host, ip) = match client.find('[') {
        Some(i) => (
            &client[..i],
            client[i + 1..].split(']').next().unwrap_or(""),
        ),
        None => match client.find('/') {
            Some(i) => (&client[..i], &client[i + 1..]),
            None => (client, ""),
        },
    };
    if host.is_empty() || host == "unknown" {
        return ip.into();
    }
    // ^(.*)\.([^\.]+)\.([^\.]{3}|[^\.]{2,3}\.[^\.]{2})$ -> $2.$3, lower-cased. The
    // labels are found from the last three dots (this runs once per received message).
    let labels = host.bytes().filter(|&b| b == b'.').count() + 1;
    let mut dots = host.rmatch_indices('.').map(|(i, _)| i);
    let (d1, d2, d3) = (dots.next(), dots.next(), dots.next());
    let last = d1.map_or(host.len(), |d| host.len() - d - 1);
    let second = match (d1, d2) {
        (Some(a), Some(b)) => a - b - 1,
        _ => 0,
    };
    let start = if labels >= 4 && (2..=3).contains(&second) && last == 2 {
        d3
    } else if labels >= 3 && last == 3 {
        d2
    } else {
        return host.into();
    };
    let kept = &host[start.map_or(0, |d| d + 1)..];
    if kept.is_ascii() {
        let mut t = Text::from(kept);
        t.make_ascii_lowercase();
        t
    } else {
        kept.to_lowercase().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gimme_domain_like_pflogsumm() {
        assert_eq!(
            &*gimme_domain("mail.host.Example.COM[1.2.3.4]"),
            "example.com"
        );
        assert_eq!(&*gimme_domain("unknown[1.2.3.4]"), "1.2.3.4");
        assert_eq!(
            &*gimme_domain("a.b.example.co.uk[1.2.3.4]"),
            "example.co.uk"
        );
        assert_eq!(&*gimme_domain("localhost[127.0.0.1]"), "localhost");
        assert_eq!(&*gimme_domain("mx.example.de[1.2.3.4]"), "mx.example.de");
        assert_eq!(&*gimme_domain("Mail.Example.NET[1.2.3.4]"), "example.net");
        assert_eq!(&*gimme_domain("a.example.com[1.2.3.4]"), "example.com");
        assert_eq!(&*gimme_domain("example.com[1.2.3.4]"), "example.com");
        assert_eq!(&*gimme_domain("x.y.co.uk[1.2.3.4]"), "y.co.uk");
        assert_eq!(&*gimme_domain("b.x.y.co.uk[1.2.3.4]"), "y.co.uk");
    }
}

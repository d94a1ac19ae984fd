//! Reading pflogsumm's "Grand Totals", to compare with ours (tests, benchmarks).

use std::collections::BTreeMap;

/// A value as pflogsumm prints it: over 512k in `k` (and over 512m in `m`), truncated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shown {
    /// The number printed.
    pub value: u64,
    /// `' '`, `'k'` or `'m'`.
    pub unit: char,
}

impl Shown {
    /// Whether our exact value prints as this.
    pub fn matches(&self, ours: u64) -> bool {
        let scaled = match self.unit {
            'k' => ours / 1024,
            'm' => ours / (1024 * 1024),
            _ => ours,
        };
        scaled == self.value
    }
}

/// pflogsumm's label of each of our [`crate::report::Totals`] fields.
pub const LABELS: [(&str, &str); 15] = [
    ("received", "received"),
    ("delivered", "delivered"),
    ("forwarded", "forwarded"),
    ("deferred", "deferred"),
    ("bounced", "bounced"),
    ("rejected", "rejected"),
    ("reject warnings", "reject_warnings"),
    ("held", "held"),
    ("discarded", "discarded"),
    ("bytes received", "bytes_received"),
    ("bytes delivered", "bytes_delivered"),
    ("senders", "senders"),
    ("sending hosts/domains", "sending_domains"),
    ("recipients", "recipients"),
    ("recipient hosts/domains", "recipient_domains"),
];

fn number(s: &str) -> Option<Shown> {
    let (digits, unit) = match s.strip_suffix(['k', 'm']) {
        Some(d) => (d, s.chars().last().unwrap_or(' ')),
        None => (s, ' '),
    };
    Some(Shown {
        value: digits.parse().ok()?,
        unit,
    })
}

/// The grand totals in pflogsumm's output, by our field names (`deferrals` too).
pub fn grand_totals(text: &str) -> BTreeMap<&'static str, Shown> {
    let mut totals = BTreeMap::new();
    totals.insert(
        "deferrals",
        Shown {
            value: 0,
            unit: ' ',
        },
    );
    for line in text.lines().take_while(|l| !l.starts_with("Per-")) {
        let Some((num, rest)) = line.trim().split_once(char::is_whitespace) else {
            continue;
        };
        let Some(shown) = number(num) else { continue };
        // "4   deferred  (26  deferrals)", "22   rejected (64%)"
        let rest = rest.trim();
        let label = rest.split(" (").next().unwrap_or(rest).trim();
        if let Some((_, field)) = LABELS.iter().find(|(l, _)| *l == label) {
            totals.insert(*field, shown);
        }
        if label == "deferred"
            && let Some(d) = rest
                .split('(')
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .and_then(number)
        {
            totals.insert("deferrals", d);
        }
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_grand_totals() {
        let text = "Grand Totals\n------------\nmessages\n\n    17   received\n    960k  bytes delivered\n      4   deferred  (26  deferrals)\n     22   rejected (64%)\n\nPer-Day Traffic Summary\n    5  received\n";
        let t = grand_totals(text);
        assert_eq!(
            t["received"],
            Shown {
                value: 17,
                unit: ' '
            }
        );
        assert!(t["bytes_delivered"].matches(960 * 1024 + 1000));
        assert_eq!(t["deferrals"].value, 26);
        assert_eq!(t["rejected"].value, 22);
    }
}

//! Accounts that behave unlike themselves: a day's sending far above their own usual days,
//! or logins from many addresses in one day (feeds the policy service's detection).

use rustc_hash::FxHashMap as HashMap;

use super::user::UserAcc;
use crate::event::Text;
use crate::report::Anomaly;

/// A day is a spike when it is at least this many times the account's median day...
const SPIKE_FACTOR: f64 = 5.0;
/// ...and at least this many messages (a quiet account sending 6 is no incident).
const SPIKE_MIN: u64 = 50;
/// Distinct login addresses in one day that look like a shared or stolen password.
const MANY_IPS: usize = 10;

fn median(mut v: Vec<u64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2] as f64
    } else {
        (v[n / 2 - 1] + v[n / 2]) as f64 / 2.0
    }
}

pub(super) fn find(users: &HashMap<Text, UserAcc>) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for (account, u) in users {
        let days: Vec<(_, u64)> = u.daily_sent.iter().map(|(d, n)| (*d, *n)).collect();
        for (i, (day, n)) in days.iter().enumerate() {
            // Baseline: the account's other days (before and after), so a spike on day one
            // of the log is seen too.
            let others: Vec<u64> = days
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, (_, m))| *m)
                .collect();
            if others.is_empty() {
                continue;
            }
            let base = median(others);
            if *n >= SPIKE_MIN && (*n as f64) >= SPIKE_FACTOR * base.max(1.0) {
                out.push(Anomaly {
                    account: account.to_string(),
                    kind: "sending-spike".into(),
                    day: day.to_string(),
                    value: *n,
                    baseline: base,
                });
            }
        }
        let ip_days: Vec<usize> = u.daily_ips.values().map(|s| s.len()).collect();
        for (day, ips) in &u.daily_ips {
            if ips.len() >= MANY_IPS {
                let base = median(ip_days.iter().map(|n| *n as u64).collect());
                out.push(Anomaly {
                    account: account.to_string(),
                    kind: "many-login-addresses".into(),
                    day: day.to_string(),
                    value: ips.len() as u64,
                    baseline: base,
                });
            }
        }
    }
    out.sort_by(|a, b| (&a.account, &a.day, &a.kind).cmp(&(&b.account, &b.day, &b.kind)));
    out
}

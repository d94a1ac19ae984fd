//! `[policy]` and its `[[policy.quota]]` rules: the outbound abuse control the policy server
//! and milter apply, validated into typed settings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::validate::Problems;
use crate::Address;

/// What a quota is counted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaKey {
    /// The SASL user; the envelope sender when the client did not authenticate.
    Sasl,
    /// The envelope sender always.
    Sender,
}

/// What happens to mail over quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverQuota {
    /// Accept and put on hold; released later at the allowed rate (nothing lost or bounced).
    Hold,
    /// Tell the client to try later (4xx).
    DeferIfPermit,
    /// Refuse (5xx).
    Reject,
}

/// What happens to mail from a send-blocked account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockedAction {
    /// Refuse with the block's reason.
    Reject,
    /// Accept and hold for an admin to look at.
    Hold,
}

/// What to do when the state store fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum StateFailure {
    /// Let mail through, uncounted (default).
    Open,
    /// Answer 4xx until the store is back.
    Closed,
}

/// Who a quota rule is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Everyone without a more specific rule (`"*"`).
    All,
    /// One domain (`"@example.com"`).
    Domain(String),
    /// One account (`"alice@example.com"`).
    Account(Address),
}

/// One `[[policy.quota]]` rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuotaRule {
    /// Who it is for.
    pub scope: Scope,
    /// Messages per window (one message to ten recipients counts one).
    pub messages: Option<u64>,
    /// Recipients per window.
    pub recipients: Option<u64>,
    /// Bytes per window.
    pub bytes: Option<u64>,
    /// What to do over quota.
    pub action: OverQuota,
    /// No limits at all for this scope.
    pub exempt: bool,
}

/// The typed `[policy]` section.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyConfig {
    /// Where the policy delegation server listens.
    pub listen: SocketAddr,
    /// Where the milter listens (for `non_smtpd_milters`), if anywhere.
    pub milter_listen: Option<SocketAddr>,
    /// What quotas count on.
    pub key: QuotaKey,
    /// The sliding window.
    pub window: Duration,
    /// Idle connections are closed after this.
    pub idle_timeout: Duration,
    /// Mail from send-blocked accounts.
    pub blocked: BlockedAction,
    /// How often blocks are re-read from the directory.
    pub block_refresh: Duration,
    /// How often held mail is considered for release.
    pub release_interval: Duration,
    /// Postfix's config directory, for `postqueue`/`postsuper -c` (release of held mail).
    pub postfix_config_dir: Option<PathBuf>,
    /// The MTA this policy server serves (`[policy] mta`): its hold queue is the one released,
    /// through its access; `None`: the Postfix on this machine.
    pub mta: Option<String>,
    /// How that MTA's tools are run (from its `[[server]]`).
    pub mta_access: mailfleet_remote::Access,
    /// Counters and held-mail records (embedded state).
    pub state_file: PathBuf,
    /// When the state store (Redis) fails: refuse mail for the time being (4xx) instead of
    /// letting it through uncounted.
    pub fail_closed: bool,
    /// The rules, most specific first is not required: lookup picks the most specific.
    pub quotas: Vec<QuotaRule>,
    /// Compromised-account detection.
    pub detect: DetectConfig,
    /// DNS blocklists the client address is looked up in (`[[policy.dnsbl]]`).
    pub dnsbls: Vec<DnsblList>,
    /// The summed weight of the lists that list a client at which its mail is refused.
    pub dnsbl_threshold: u32,
    /// Refuse for good (5xx) or for now (4xx) at the threshold.
    pub dnsbl_defer: bool,
    /// The DNS server for DNSBL lookups (`host:port`), instead of the system's resolver.
    pub dns_server: Option<SocketAddr>,
    /// Postfix's log (`maillog_file`), followed to give back the count of mail rejected after
    /// mailfleet counted it, and to see recipients rejected at RCPT; on the `mta` through its
    /// access (by default its `mail_log`).
    pub postfix_log: Option<PathBuf>,
}

/// One DNS blocklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsblList {
    /// Its zone (`zen.example.org`).
    pub zone: String,
    /// What a listing adds to the client's score.
    pub weight: u32,
}

/// `[policy.detect]`: when an account looks compromised.
#[derive(Debug, Clone, Serialize)]
pub struct DetectConfig {
    /// Quota breaches within a day that flag an account.
    pub repeat_breaches: u32,
    /// Held messages that flag an account.
    pub held_messages: usize,
    /// A window's messages this many times the account's own average flag it...
    pub rate_factor: f64,
    /// ...when they are at least this many.
    pub rate_min_messages: u64,
    /// Distinct client networks (/24, /64) within `network_window` that flag an account.
    pub networks: usize,
    /// The period over which client networks are counted.
    pub network_window: Duration,
    /// Recipients refused at RCPT within an hour that flag an account...
    pub rejected_recipients: u64,
    /// ...when they are at least this share (percent) of its recipients.
    pub rejected_share_percent: u64,
    /// Also block a flagged account (reason `compromised`), not only alert.
    pub block: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    listen: Option<String>,
    milter_listen: Option<String>,
    key: Option<QuotaKey>,
    window_secs: Option<i64>,
    idle_timeout_secs: Option<i64>,
    blocked: Option<BlockedAction>,
    block_refresh_secs: Option<i64>,
    release_interval_secs: Option<i64>,
    postfix_config_dir: Option<PathBuf>,
    mta: Option<String>,
    state_failure: Option<StateFailure>,
    #[serde(default, rename = "quota")]
    quotas: Vec<RawQuota>,
    #[serde(default)]
    detect: RawDetect,
    #[serde(default, rename = "dnsbl")]
    dnsbls: Vec<RawDnsbl>,
    dnsbl_threshold: Option<i64>,
    dnsbl_action: Option<String>,
    dns_server: Option<String>,
    postfix_log: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDnsbl {
    zone: Option<String>,
    weight: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDetect {
    repeat_breaches: Option<i64>,
    held_messages: Option<i64>,
    rate_factor: Option<f64>,
    rate_min_messages: Option<i64>,
    networks: Option<i64>,
    network_window_secs: Option<i64>,
    rejected_recipients: Option<i64>,
    rejected_share_percent: Option<i64>,
    #[serde(default)]
    block: bool,
}

fn count(v: Option<i64>, default: i64, key: &str, p: &mut Problems) -> u64 {
    let v = v.unwrap_or(default);
    if v < 1 {
        p.add(key, format!("{v} is not a positive number"));
        return default as u64;
    }
    v as u64
}

fn detect(raw: &RawDetect, p: &mut Problems) -> DetectConfig {
    let factor = raw.rate_factor.unwrap_or(10.0);
    if !(factor > 1.0 && factor.is_finite()) {
        p.add(
            "policy.detect.rate_factor",
            format!("{factor} is not above 1"),
        );
    }
    DetectConfig {
        repeat_breaches: count(raw.repeat_breaches, 3, "policy.detect.repeat_breaches", p) as u32,
        held_messages: count(raw.held_messages, 50, "policy.detect.held_messages", p) as usize,
        rate_factor: if factor > 1.0 && factor.is_finite() {
            factor
        } else {
            10.0
        },
        rate_min_messages: count(
            raw.rate_min_messages,
            50,
            "policy.detect.rate_min_messages",
            p,
        ),
        networks: count(raw.networks, 10, "policy.detect.networks", p) as usize,
        network_window: secs(
            raw.network_window_secs,
            3600,
            60..=7 * 86400,
            "policy.detect.network_window_secs",
            p,
        ),
        rejected_recipients: count(
            raw.rejected_recipients,
            20,
            "policy.detect.rejected_recipients",
            p,
        ),
        rejected_share_percent: {
            let v = count(
                raw.rejected_share_percent,
                50,
                "policy.detect.rejected_share_percent",
                p,
            );
            if v > 100 {
                p.add(
                    "policy.detect.rejected_share_percent",
                    format!("{v} is above 100"),
                );
            }
            v.min(100)
        },
        block: raw.block,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuota {
    #[serde(rename = "for")]
    scope: Option<String>,
    messages: Option<i64>,
    recipients: Option<i64>,
    bytes: Option<i64>,
    action: Option<OverQuota>,
    #[serde(default)]
    exempt: bool,
}

fn secs(
    v: Option<i64>,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
    key: &str,
    p: &mut Problems,
) -> Duration {
    let v = v.unwrap_or(default);
    if !range.contains(&v) {
        p.add(
            key,
            format!("{v} is out of range {}-{}", range.start(), range.end()),
        );
    }
    Duration::from_secs(v.clamp(*range.start(), *range.end()) as u64)
}

fn addr(v: &str, key: &str, p: &mut Problems) -> Option<SocketAddr> {
    match v.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            p.add(key, format!("{v:?} is not an address:port"));
            None
        }
    }
}

fn scope(v: Option<&str>, key: &str, p: &mut Problems) -> Scope {
    match v.map(str::trim) {
        None | Some("*") => Scope::All,
        Some(d) if d.starts_with('@') && d.len() > 1 && !d[1..].contains('@') => {
            Scope::Domain(d[1..].to_ascii_lowercase())
        }
        Some(a) => match Address::parse(a) {
            Ok(a) => Scope::Account(a),
            Err(e) => {
                p.add(
                    key,
                    format!("{a:?} is not \"*\", \"@DOMAIN\" or an address: {e}"),
                );
                Scope::All
            }
        },
    }
}

fn limit(v: Option<i64>, key: String, p: &mut Problems) -> Option<u64> {
    match v {
        Some(n) if n < 1 => {
            p.add(key, format!("{n} is not a positive number"));
            None
        }
        n => n.map(|n| n as u64),
    }
}

pub(super) fn validate(
    raw: &RawPolicy,
    base: &Path,
    data_dir: &Path,
    p: &mut Problems,
) -> PolicyConfig {
    let listen = raw
        .listen
        .as_deref()
        .and_then(|v| addr(v, "policy.listen", p))
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 10040)));
    let milter_listen = raw
        .milter_listen
        .as_deref()
        .and_then(|v| addr(v, "policy.milter_listen", p));
    let mut quotas = Vec::new();
    for (i, q) in raw.quotas.iter().enumerate() {
        let key = |k: &str| format!("policy.quota[{i}].{k}");
        let rule = QuotaRule {
            scope: scope(q.scope.as_deref(), &key("for"), p),
            messages: limit(q.messages, key("messages"), p),
            recipients: limit(q.recipients, key("recipients"), p),
            bytes: limit(q.bytes, key("bytes"), p),
            action: q.action.unwrap_or(OverQuota::Hold),
            exempt: q.exempt,
        };
        if !rule.exempt && q.messages.is_none() && q.recipients.is_none() && q.bytes.is_none() {
            p.add(
                format!("policy.quota[{i}]"),
                "sets no limit: give messages, recipients or bytes, or exempt = true",
            );
        }
        if quotas.iter().any(|r: &QuotaRule| r.scope == rule.scope) {
            p.add(key("for"), "a second rule for the same scope");
        }
        quotas.push(rule);
    }
    PolicyConfig {
        listen,
        milter_listen,
        key: raw.key.unwrap_or(QuotaKey::Sasl),
        window: secs(
            raw.window_secs,
            3600,
            1..=7 * 86400,
            "policy.window_secs",
            p,
        ),
        idle_timeout: secs(
            raw.idle_timeout_secs,
            300,
            1..=86400,
            "policy.idle_timeout_secs",
            p,
        ),
        blocked: raw.blocked.unwrap_or(BlockedAction::Reject),
        block_refresh: secs(
            raw.block_refresh_secs,
            5,
            1..=3600,
            "policy.block_refresh_secs",
            p,
        ),
        release_interval: secs(
            raw.release_interval_secs,
            60,
            1..=86400,
            "policy.release_interval_secs",
            p,
        ),
        postfix_config_dir: raw
            .postfix_config_dir
            .as_ref()
            .map(|d| super::validate::resolve(base, d)),
        // Resolved against the fleet once it is read (see `validate`).
        mta: raw.mta.clone(),
        mta_access: mailfleet_remote::Access::Local,
        state_file: data_dir.join("policy.db"),
        fail_closed: raw.state_failure == Some(StateFailure::Closed),
        detect: detect(&raw.detect, p),
        dnsbls: raw
            .dnsbls
            .iter()
            .enumerate()
            .filter_map(|(i, d)| {
                let zone = d.zone.as_deref().map(str::trim).unwrap_or("");
                let valid = !zone.is_empty()
                    && zone.split('.').all(|l| {
                        !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    });
                if !valid {
                    p.add(
                        format!("policy.dnsbl[{i}].zone"),
                        format!("{zone:?} is not a DNS zone"),
                    );
                    return None;
                }
                let weight = count(d.weight, 1, &format!("policy.dnsbl[{i}].weight"), p);
                Some(DnsblList {
                    zone: zone.trim_end_matches('.').to_ascii_lowercase(),
                    weight: u32::try_from(weight).unwrap_or(u32::MAX),
                })
            })
            .collect(),
        dnsbl_threshold: u32::try_from(count(raw.dnsbl_threshold, 1, "policy.dnsbl_threshold", p))
            .unwrap_or(u32::MAX),
        dnsbl_defer: match raw.dnsbl_action.as_deref() {
            None | Some("reject") => false,
            Some("defer") => true,
            Some(other) => {
                p.add(
                    "policy.dnsbl_action",
                    format!("{other:?} is not \"reject\" or \"defer\""),
                );
                false
            }
        },
        dns_server: raw
            .dns_server
            .as_deref()
            .and_then(|v| addr(v, "policy.dns_server", p)),
        postfix_log: raw
            .postfix_log
            .as_ref()
            .map(|f| super::validate::resolve(base, f)),
        quotas,
    }
}

impl PolicyConfig {
    /// The rule that applies to an address: its own, else its domain's, else `"*"`'s.
    pub fn rule_for(&self, address: &str) -> Option<&QuotaRule> {
        let address = address.to_ascii_lowercase();
        let domain = address.rsplit_once('@').map(|(_, d)| d);
        self.quotas
            .iter()
            .find(|r| matches!(&r.scope, Scope::Account(a) if a.as_str().eq_ignore_ascii_case(&address)))
            .or_else(|| {
                self.quotas
                    .iter()
                    .find(|r| matches!(&r.scope, Scope::Domain(d) if Some(d.as_str()) == domain))
            })
            .or_else(|| self.quotas.iter().find(|r| r.scope == Scope::All))
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn the_most_specific_rule_applies() {
        let text = "[policy]\n[[policy.quota]]\nfor = \"*\"\nmessages = 100\n\
                    [[policy.quota]]\nfor = \"@example.org\"\nmessages = 500\n\
                    [[policy.quota]]\nfor = \"News@Example.org\"\nexempt = true\n";
        let c = Config::parse(text, std::path::Path::new("/tmp/mailfleet.toml")).unwrap();
        let p = &c.policy;
        assert_eq!(
            p.rule_for("a@example.com").and_then(|r| r.messages),
            Some(100)
        );
        assert_eq!(
            p.rule_for("a@EXAMPLE.org").and_then(|r| r.messages),
            Some(500)
        );
        assert!(p.rule_for("news@example.org").is_some_and(|r| r.exempt));
    }
}

//! The DNSBL stage, as postscreen weighs it: the client's address is looked up in every
//! configured list at once; the weights of the lists that list it add up, and at the
//! threshold its mail is refused. Hits are counted per list, and per distinct address.
//! A lookup that fails or times out counts as not listed: a slow DNS must not stop mail.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use mailfleet_core::config::policy::{DnsblList, PolicyConfig};
use serde::Serialize;

/// How long a client's result is reused.
const CACHE_FOR: Duration = Duration::from_secs(300);

/// Hits of one list.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct ListHits {
    /// The list's zone.
    pub zone: String,
    /// Lookups that found the client listed.
    pub hits: u64,
    /// Distinct addresses found listed.
    pub unique: u64,
}

#[derive(Default)]
struct Stats {
    hits: Vec<u64>,
    unique: Vec<HashSet<IpAddr>>,
}

/// The lists and their counts.
pub struct Dnsbl {
    resolver: TokioResolver,
    lists: Vec<DnsblList>,
    cache: Mutex<HashMap<IpAddr, (Instant, Vec<usize>)>>,
    stats: Mutex<Stats>,
}

/// The name to look up: the address's labels reversed (nibbles for IPv6), then the zone.
pub fn query_name(ip: IpAddr, zone: &str) -> String {
    match ip {
        IpAddr::V4(v) => {
            let o = v.octets();
            format!("{}.{}.{}.{}.{zone}.", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v) => {
            let mut s = String::new();
            for b in v.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            format!("{s}{zone}.")
        }
    }
}

/// Whether an answer means "listed": 127.0.0.2 and up (RFC 5782), not 127.0.0.1 and not the
/// 127.255.255.x codes lists use for errors (such as "query refused").
pub fn is_listing(a: std::net::Ipv4Addr) -> bool {
    let o = a.octets();
    o[0] == 127 && a != std::net::Ipv4Addr::new(127, 0, 0, 1) && !(o[1] == 255 && o[2] == 255)
}

impl Dnsbl {
    /// The configured lists, or `None` when there are none.
    pub fn new(config: &PolicyConfig) -> Option<Self> {
        if config.dnsbls.is_empty() {
            return None;
        }
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 1;
        let resolver = match config.dns_server {
            Some(server) => TokioResolver::builder_with_config(
                ResolverConfig::from_parts(
                    None,
                    Vec::new(),
                    NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true),
                ),
                TokioConnectionProvider::default(),
            ),
            None => match TokioResolver::builder_tokio() {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!("DNSBL stage off: no system resolver: {e}");
                    return None;
                }
            },
        }
        .with_options(opts)
        .build();
        let n = config.dnsbls.len();
        Some(Dnsbl {
            resolver,
            lists: config.dnsbls.clone(),
            cache: Mutex::new(HashMap::new()),
            stats: Mutex::new(Stats {
                hits: vec![0; n],
                unique: vec![HashSet::new(); n],
            }),
        })
    }

    async fn listed_in(&self, ip: IpAddr) -> Vec<usize> {
        let lookups = self.lists.iter().map(|l| {
            let name = query_name(ip, &l.zone);
            async move {
                match self.resolver.ipv4_lookup(name).await {
                    Ok(answers) => answers.iter().any(|a| is_listing(a.0)),
                    Err(_) => false,
                }
            }
        });
        // All lists at once: the slowest answer, not the sum of them.
        futures::future::join_all(lookups)
            .await
            .into_iter()
            .enumerate()
            .filter_map(|(i, listed)| listed.then_some(i))
            .collect()
    }

    /// The client's score and the zones that list it (cached for a few minutes).
    pub async fn check(&self, ip: IpAddr) -> (u32, Vec<String>) {
        let cached = {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache
                .get(&ip)
                .filter(|(at, _)| at.elapsed() < CACHE_FOR)
                .map(|(_, l)| l.clone())
        };
        let listed = match cached {
            Some(l) => l,
            None => {
                let l = self.listed_in(ip).await;
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() > 100_000 {
                    cache.retain(|_, (at, _)| at.elapsed() < CACHE_FOR);
                }
                cache.insert(ip, (Instant::now(), l.clone()));
                l
            }
        };
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        for &i in &listed {
            stats.hits[i] += 1;
            stats.unique[i].insert(ip);
        }
        let score = listed.iter().map(|&i| self.lists[i].weight).sum();
        let zones = listed.iter().map(|&i| self.lists[i].zone.clone()).collect();
        (score, zones)
    }

    /// Hits per list so far.
    pub fn hits(&self) -> Vec<ListHits> {
        let stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        self.lists
            .iter()
            .enumerate()
            .map(|(i, l)| ListHits {
                zone: l.zone.clone(),
                hits: stats.hits[i],
                unique: stats.unique[i].len() as u64,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_answers() {
        assert_eq!(
            query_name("192.0.2.10".parse().unwrap(), "bl.test"),
            "10.2.0.192.bl.test."
        );
        assert!(
            query_name("2001:db8::1".parse().unwrap(), "bl.test").starts_with("1.0.0.0.0.0.0.0.")
        );
        assert!(is_listing("127.0.0.2".parse().unwrap()));
        assert!(is_listing("127.0.0.10".parse().unwrap()));
        assert!(!is_listing("127.0.0.1".parse().unwrap()));
        assert!(!is_listing("127.255.255.254".parse().unwrap()));
        assert!(!is_listing("10.0.0.2".parse().unwrap()));
    }
}

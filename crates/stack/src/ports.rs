//! The loopback ports of one stack: fixed from a base for the demo, free ones for tests.

use serde::{Deserialize, Serialize};

/// Ports of a mailbox store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorePorts {
    /// IMAP.
    pub imap: u16,
    /// POP3.
    pub pop3: u16,
    /// LMTP.
    pub lmtp: u16,
    /// IMAP over implicit TLS.
    pub imaps: u16,
    /// POP3 over implicit TLS.
    pub pop3s: u16,
    /// doveadm's TCP service (moves copy through it); 0 in a stack made before it existed.
    #[serde(default)]
    pub doveadm: u16,
}

/// Ports of the IMAP/POP3 proxy; 0 in a stack made before it existed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyPorts {
    /// IMAP.
    pub imap: u16,
    /// POP3.
    pub pop3: u16,
}

/// Every port one stack listens on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackPorts {
    /// Postfix SMTP.
    pub smtp: u16,
    /// Postfix submission (STARTTLS required, then SMTP AUTH).
    pub submission: u16,
    /// Dovecot's auth service on the MTA, which Postfix asks for SMTP AUTH.
    pub sasl: u16,
    /// The two stores, in order.
    pub stores: [StorePorts; 2],
    /// slapd.
    pub ldap: u16,
    /// The replica slapd.
    pub ldap_replica: u16,
    /// Redis.
    pub redis: u16,
    /// Every server's sshd, each on the server's own loopback address.
    pub ssh: u16,
    /// The proxy in front of the stores.
    #[serde(default)]
    pub proxy: ProxyPorts,
}

/// The demo's default port base: SMTP on 20025, IMAP on 20143 and 20243, and so on.
pub const DEFAULT_BASE: u16 = 20000;

impl StackPorts {
    /// Ports at fixed offsets from `base`, easy to remember; `None` if they would pass 65535.
    pub fn from_base(base: u16) -> Option<Self> {
        let at = |off: u16| base.checked_add(off);
        Some(StackPorts {
            smtp: at(25)?,
            submission: at(587)?,
            sasl: at(12)?,
            stores: [
                StorePorts {
                    imap: at(143)?,
                    pop3: at(110)?,
                    lmtp: at(24)?,
                    imaps: at(993)?,
                    pop3s: at(995)?,
                    doveadm: at(924)?,
                },
                StorePorts {
                    imap: at(243)?,
                    pop3: at(210)?,
                    lmtp: at(124)?,
                    imaps: at(1993)?,
                    pop3s: at(1995)?,
                    doveadm: at(1924)?,
                },
            ],
            ldap: at(389)?,
            ldap_replica: at(390)?,
            redis: at(379)?,
            ssh: at(22)?,
            proxy: ProxyPorts {
                imap: at(1143)?,
                pop3: at(1110)?,
            },
        })
    }

    /// Ports free on `host` and the servers' own addresses right now, taken below the kernel's ephemeral range (so an
    /// outgoing connection of another test cannot grab one before the service binds it) and
    /// from a process-wide cursor (so stacks started in parallel never share one).
    pub fn free(host: &str) -> std::io::Result<Self> {
        // Free on the stack's address and on every server's own one: each binds some.
        let mut hosts = vec![host.to_string()];
        hosts.extend(crate::layout::ssh_hosts(host).into_iter().map(|(_, a)| a));
        let mut p = Vec::with_capacity(21);
        while p.len() < 21 {
            let port = next_candidate();
            if hosts
                .iter()
                .all(|h| std::net::TcpListener::bind((h.as_str(), port)).is_ok())
            {
                p.push(port);
            }
        }
        Ok(StackPorts {
            smtp: p[0],
            submission: p[10],
            sasl: p[11],
            stores: [
                StorePorts {
                    imap: p[1],
                    pop3: p[2],
                    lmtp: p[3],
                    imaps: p[12],
                    pop3s: p[13],
                    doveadm: p[17],
                },
                StorePorts {
                    imap: p[4],
                    pop3: p[5],
                    lmtp: p[6],
                    imaps: p[14],
                    pop3s: p[15],
                    doveadm: p[18],
                },
            ],
            ldap: p[7],
            redis: p[8],
            ldap_replica: p[9],
            ssh: p[16],
            proxy: ProxyPorts {
                imap: p[19],
                pop3: p[20],
            },
        })
    }

    /// Every port with the service it belongs to (its server first in the name: the MTAs
    /// share port numbers, each on its own address).
    pub fn all(&self) -> Vec<(String, u16)> {
        let mut v = Vec::new();
        for mta in crate::layout::MTAS {
            v.push((format!("{mta} smtp"), self.smtp));
            v.push((format!("{mta} submission"), self.submission));
            v.push((format!("{mta}-auth sasl"), self.sasl));
        }
        for (name, s) in crate::layout::STORES.iter().zip(&self.stores) {
            v.push((format!("{name} imap"), s.imap));
            v.push((format!("{name} pop3"), s.pop3));
            v.push((format!("{name} lmtp"), s.lmtp));
            v.push((format!("{name} imaps"), s.imaps));
            v.push((format!("{name} pop3s"), s.pop3s));
            v.push((format!("{name} doveadm"), s.doveadm));
        }
        v.push(("ldap1 ldap".into(), self.ldap));
        v.push(("ldap2 ldap".into(), self.ldap_replica));
        v.push(("redis".into(), self.redis));
        if self.proxy.imap != 0 {
            v.push((format!("{} imap", crate::layout::PROXY), self.proxy.imap));
            v.push((format!("{} pop3", crate::layout::PROXY), self.proxy.pop3));
        }
        v
    }

    /// The sshd port on each server's address (see [`crate::layout::ssh_hosts`]).
    pub fn ssh_endpoints(&self, host: &str) -> Vec<(String, String, u16)> {
        crate::layout::ssh_hosts(host)
            .into_iter()
            .map(|(name, addr)| (format!("{name} ssh"), addr, self.ssh))
            .collect()
    }
}

/// `n` more ports free on `host` right now (for services a test starts itself), from the same
/// cursor as the stacks' ports.
pub fn free_ports(host: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let port = next_candidate();
        if std::net::TcpListener::bind((host, port)).is_ok() {
            out.push(port);
        }
    }
    out
}

/// Test ports come from 20000..32000, below Linux's default ephemeral range (32768..61000).
const TEST_RANGE: std::ops::Range<u16> = 20000..32000;

/// The next port to try: a cursor starting at a point chosen by the process id and clock,
/// so concurrent test processes start far apart, then walking the range.
fn next_candidate() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static CURSOR: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = u32::from(TEST_RANGE.end - TEST_RANGE.start);
    if CURSOR.load(Ordering::Relaxed) == u32::MAX {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let seed = (std::process::id().wrapping_mul(7919) ^ nanos) % span;
        let _ = CURSOR.compare_exchange(u32::MAX, seed, Ordering::Relaxed, Ordering::Relaxed);
    }
    let n = CURSOR.fetch_add(1, Ordering::Relaxed) % span;
    // n < span <= u16::MAX - TEST_RANGE.start, so the sum fits.
    TEST_RANGE.start + n as u16
}

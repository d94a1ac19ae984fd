//! Where each daemon's files live under the stack's base directory.

use std::path::{Path, PathBuf};

/// Paths of one stack.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The base directory.
    pub base: PathBuf,
}

/// Names of the two demo mailbox stores.
pub const STORES: [&str; 2] = ["store1", "store2"];
/// Name of the demo's first MTA.
pub const MTA: &str = "mx1";
/// The demo's MTAs: a redundant pair in group "mta", both routing by the directory.
pub const MTAS: [&str; 2] = [MTA, "mx2"];
/// Name of the Dovecot instance on the first MTA that checks SMTP AUTH passwords for Postfix.
pub const MTA_AUTH: &str = "mx1-auth";

/// The auth-only Dovecot beside an MTA (`mx2` has `mx2-auth`).
pub fn auth_of(mta: &str) -> String {
    format!("{mta}-auth")
}
/// Name of the demo's IMAP/POP3 proxy: users log in there, it passes each login on to the
/// account's store as the directory says.
pub const PROXY: &str = "proxy1";
/// Name of the demo directory server.
pub const LDAP: &str = "ldap1";
/// Name of its replica.
pub const LDAP_REPLICA: &str = "ldap2";

/// The demo servers reached by SSH, with the last byte of each one's own loopback address.
pub const SSH_SERVERS: [(&str, u8); 7] = [
    (LDAP, 11),
    (LDAP_REPLICA, 12),
    (MTA, 21),
    ("mx2", 22),
    ("store1", 31),
    ("store2", 32),
    (PROXY, 41),
];

/// The address a demo server's own daemons listen on: its own loopback address (see
/// [`ssh_hosts`]), as its sshd; the `-auth` Dovecot of an MTA shares its MTA's.
pub fn daemon_host(host: &str, server: &str) -> String {
    own_host(host, server.strip_suffix("-auth").unwrap_or(server))
}

/// A server's own loopback address (see [`ssh_hosts`]).
pub fn own_host(host: &str, server: &str) -> String {
    ssh_hosts(host)
        .into_iter()
        .find(|(n, _)| *n == server)
        .map_or_else(|| host.to_string(), |(_, a)| a)
}

/// Each SSH-reached server's own address: the stack's IPv4 loopback address with the last
/// byte replaced (127.0.0.1 gives 127.0.0.11 for ldap1, 127.0.0.31 for store1); any other
/// address is used as it is by all of them.
pub fn ssh_hosts(host: &str) -> Vec<(&'static str, String)> {
    let base = host
        .parse::<std::net::Ipv4Addr>()
        .ok()
        .filter(|a| a.is_loopback());
    SSH_SERVERS
        .iter()
        .map(|(name, last)| {
            let addr = match base {
                Some(a) => {
                    let [x, y, z, _] = a.octets();
                    std::net::Ipv4Addr::new(x, y, z, *last).to_string()
                }
                None => host.to_string(),
            };
            (*name, addr)
        })
        .collect()
}

impl Layout {
    /// A layout rooted at `base` (made absolute: daemons are started from elsewhere).
    pub fn new(base: &Path) -> Self {
        let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
        Layout { base }
    }
    /// `stack.json`: ports and paths of the running stack.
    pub fn info_file(&self) -> PathBuf {
        self.base.join("stack.json")
    }
    /// Log files of every daemon.
    pub fn log_dir(&self) -> PathBuf {
        self.base.join("log")
    }
    /// The generated `mailfleet.toml`.
    pub fn config_file(&self) -> PathBuf {
        self.base.join("mailfleet.toml")
    }
    /// mailfleet's data directory for this stack.
    pub fn data_dir(&self) -> PathBuf {
        self.base.join("data")
    }
    /// The demo PKI (CA, server certificate and key).
    pub fn tls_dir(&self) -> PathBuf {
        self.base.join("tls")
    }
    /// The first MTA's Postfix config directory.
    pub fn postfix_conf(&self) -> PathBuf {
        self.postfix_conf_of(MTA)
    }
    /// The first MTA's Postfix master PID file.
    pub fn postfix_pid(&self) -> PathBuf {
        self.postfix_pid_of(MTA)
    }
    /// An MTA's Postfix config directory.
    pub fn postfix_conf_of(&self, mta: &str) -> PathBuf {
        self.base.join(mta).join("conf")
    }
    /// An MTA's Postfix queue directory.
    pub fn postfix_queue_of(&self, mta: &str) -> PathBuf {
        self.base.join(mta).join("queue")
    }
    /// An MTA's Postfix master PID file.
    pub fn postfix_pid_of(&self, mta: &str) -> PathBuf {
        self.postfix_queue_of(mta).join("pid").join("master.pid")
    }
    /// An MTA's mail log (`postfix.log` for the first, `postfix-mx2.log` for the second).
    pub fn postfix_log(&self, mta: &str) -> PathBuf {
        if mta == MTA {
            self.log_dir().join("postfix.log")
        } else {
            self.log_dir().join(format!("postfix-{mta}.log"))
        }
    }
    /// A store's own directory.
    pub fn store(&self, store: &str) -> PathBuf {
        self.base.join(store)
    }
    /// A store's Maildir root.
    pub fn maildir_root(&self, store: &str) -> PathBuf {
        self.store(store).join("mail")
    }
    /// A store's passwd-file.
    pub fn passwd_file(&self, store: &str) -> PathBuf {
        self.store(store).join("users")
    }
    /// A store's Dovecot config.
    pub fn dovecot_conf(&self, store: &str) -> PathBuf {
        self.store(store).join("dovecot.conf")
    }
    /// A store's Dovecot master PID file.
    pub fn dovecot_pid(&self, store: &str) -> PathBuf {
        self.store(store).join("run").join("master.pid")
    }
    /// slapd's directory.
    pub fn ldap(&self) -> PathBuf {
        self.base.join(LDAP)
    }
    /// The replica slapd's directory.
    pub fn ldap_replica(&self) -> PathBuf {
        self.base.join(LDAP_REPLICA)
    }
    /// The file with slapd's admin password.
    pub fn ldap_secret(&self) -> PathBuf {
        self.ldap().join("admin.secret")
    }
    /// slapd's PID file.
    pub fn slapd_pid(&self) -> PathBuf {
        self.ldap().join("slapd.pid")
    }
    /// The file with the probe accounts' password.
    pub fn probe_secret(&self) -> PathBuf {
        self.base.join("probe.secret")
    }
    /// The password the stores' doveadm services share (a move copies between them).
    pub fn doveadm_secret(&self) -> PathBuf {
        self.base.join("doveadm.secret")
    }
    /// Accounts being moved into a store: a second userdb, so the store knows them before
    /// the directory says they live there.
    pub fn incoming_users(&self, store: &str) -> PathBuf {
        self.store(store).join("users.incoming")
    }
    /// A server's own sshd.
    pub fn sshd(&self, server: &str, host: &str, port: u16) -> crate::sshd::Sshd {
        crate::sshd::Sshd::new(&self.base.join(server), host, port)
    }
    /// The operator key and `known_hosts` of the stack.
    pub fn ssh_files(&self) -> crate::sshd::SshFiles {
        crate::sshd::SshFiles::new(&self.base)
    }
    /// Redis's directory.
    pub fn redis(&self) -> PathBuf {
        self.base.join("redis")
    }
    /// Redis's PID file.
    pub fn redis_pid(&self) -> PathBuf {
        self.redis().join("redis.pid")
    }
    /// The local package repository every demo server reads (see [`crate::apt`]).
    pub fn apt_repo(&self) -> PathBuf {
        self.base.join("apt-repo")
    }
    /// A demo server's own package root.
    pub fn package_root(&self, server: &str) -> PathBuf {
        self.base.join(server).join("packages")
    }
}

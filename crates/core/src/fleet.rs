//! The fleet: servers, their roles and ports, and redundancy groups.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What a server does in the fleet; a server may have several roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// LDAP master or replica.
    Directory,
    /// Postfix MTA.
    Mta,
    /// IMAP/POP3/HTTP proxy.
    Proxy,
    /// Mailbox store (Dovecot, Zimbra mailbox).
    Mailbox,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Directory => "directory",
            Role::Mta => "mta",
            Role::Proxy => "proxy",
            Role::Mailbox => "mailbox",
        })
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "directory" => Ok(Role::Directory),
            "mta" => Ok(Role::Mta),
            "proxy" => Ok(Role::Proxy),
            "mailbox" => Ok(Role::Mailbox),
            _ => Err(format!(
                "{s:?} is not a role (directory, mta, proxy, mailbox)"
            )),
        }
    }
}

/// The ports a server serves, one per protocol; `None` where it does not serve it.
/// The config file reads `Ports<i64>`, so an out-of-range value gets mailfleet's own message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ports<T = u16> {
    /// SMTP (MX traffic).
    pub smtp: Option<T>,
    /// Message submission.
    pub submission: Option<T>,
    /// IMAP.
    pub imap: Option<T>,
    /// POP3.
    pub pop3: Option<T>,
    /// LMTP (delivery into a mailbox store).
    pub lmtp: Option<T>,
    /// HTTP (webmail, admin console).
    pub http: Option<T>,
    /// LDAP.
    pub ldap: Option<T>,
    /// SMTP submission over implicit TLS (RFC 8314, usually 465).
    pub smtps: Option<T>,
    /// IMAP over implicit TLS (usually 993).
    pub imaps: Option<T>,
    /// POP3 over implicit TLS (usually 995).
    pub pop3s: Option<T>,
    /// HTTPS.
    pub https: Option<T>,
    /// LDAP over implicit TLS (usually 636).
    pub ldaps: Option<T>,
    /// Dovecot's doveadm TCP service (a mailbox move's target pulls from its source through it).
    pub doveadm: Option<T>,
}

impl<T: Copy> Ports<T> {
    /// Every protocol with its port, in a fixed order.
    pub fn fields(&self) -> [(&'static str, Option<T>); 13] {
        [
            ("smtp", self.smtp),
            ("submission", self.submission),
            ("imap", self.imap),
            ("pop3", self.pop3),
            ("lmtp", self.lmtp),
            ("http", self.http),
            ("ldap", self.ldap),
            ("smtps", self.smtps),
            ("imaps", self.imaps),
            ("pop3s", self.pop3s),
            ("https", self.https),
            ("ldaps", self.ldaps),
            ("doveadm", self.doveadm),
        ]
    }

    /// Every configured port with its protocol name.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, T)> {
        self.fields()
            .into_iter()
            .filter_map(|(n, p)| p.map(|p| (n, p)))
    }

    /// Converts each port; a port `f` maps to `None` is dropped.
    pub fn filter_map<U>(&self, mut f: impl FnMut(&'static str, T) -> Option<U>) -> Ports<U> {
        let mut g = |name, v: Option<T>| v.and_then(|v| f(name, v));
        Ports {
            smtp: g("smtp", self.smtp),
            submission: g("submission", self.submission),
            imap: g("imap", self.imap),
            pop3: g("pop3", self.pop3),
            lmtp: g("lmtp", self.lmtp),
            http: g("http", self.http),
            ldap: g("ldap", self.ldap),
            smtps: g("smtps", self.smtps),
            imaps: g("imaps", self.imaps),
            pop3s: g("pop3s", self.pop3s),
            https: g("https", self.https),
            ldaps: g("ldaps", self.ldaps),
            doveadm: g("doveadm", self.doveadm),
        }
    }
}

/// When the probes upgrade a plain connection with STARTTLS (STLS for POP3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartTls {
    /// Whenever the server offers it.
    #[default]
    Auto,
    /// Always: a server that does not offer it is CRITICAL.
    Require,
    /// Never: the plain ports are probed in clear text.
    Off,
}

/// How the probes use TLS with one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsSettings {
    /// STARTTLS on the plain ports.
    pub starttls: StartTls,
    /// Whether the certificate must chain to a trusted CA and name the host; `false` for
    /// self-signed certificates (the handshake is still checked, expiry still reported).
    pub verify: bool,
    /// A PEM file of CA certificates to trust besides the system's.
    pub ca_file: Option<PathBuf>,
    /// The name the certificate must carry, when not the server's `host`.
    pub server_name: Option<String>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            starttls: StartTls::Auto,
            verify: true,
            ca_file: None,
            server_name: None,
        }
    }
}

/// One server of the fleet, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Server {
    /// Unique name, as the directory's mailbox-server attribute names it.
    pub name: String,
    /// How its own tools are run: locally or over SSH.
    pub access: mailfleet_remote::Access,
    /// What it does.
    pub roles: BTreeSet<Role>,
    /// Address or host name to reach it.
    pub host: String,
    /// Ports per protocol.
    pub ports: Ports,
    /// Redundancy group, if any.
    pub group: Option<String>,
    /// Updated first in its role, and watched for a soak time before the others follow.
    pub canary: bool,
    /// Where its packages live when not under `/` (a chroot or image; the demo gives each of
    /// its servers one): apt and dpkg run with it as their root.
    pub package_root: Option<PathBuf>,
    /// How this store is emptied before its update (unset: `[upgrade] drain`).
    pub drain: Option<crate::config::Drain>,
    /// Capacity weight for placing new mailboxes (0: takes no new mailboxes).
    pub weight: u32,
    /// Mailbox stores: the root under which `DOMAIN/LOCAL/Maildir` lives.
    pub maildir_root: Option<PathBuf>,
    /// Mailbox stores: Dovecot's config on the server when not the default (`doveadm -c`).
    pub dovecot_config: Option<PathBuf>,
    /// MTAs: the Postfix config directory where mailfleet writes its routing maps.
    pub postfix_dir: Option<PathBuf>,
    /// The Dovecot passwd-file mailfleet writes: a store's own accounts; on an MTA, every
    /// account (SMTP AUTH through Dovecot).
    pub passwd_file: Option<PathBuf>,
    /// Mailbox stores: the account the probes log in as (its password is `[probe] password_file`).
    pub probe_account: Option<crate::Address>,
    /// Directory replicas: the master whose `contextCSN` this one must follow.
    pub replica_of: Option<String>,
    /// How far (in time) the replica may lag behind its master before it is CRITICAL.
    pub replica_max_lag: std::time::Duration,
    /// The path the HTTP check requests (default `/`).
    pub http_path: String,
    /// The PID file of its main daemon, when it runs here: the monitor notices restarts.
    pub pid_file: Option<PathBuf>,
    /// Mailbox stores: the status file of the latest backup run (the backup command writes it).
    pub backup_status: Option<PathBuf>,
    /// The newest good backup may be this old before its check is CRITICAL.
    pub backup_max_age: std::time::Duration,
    /// TLS for the probes.
    pub tls: TlsSettings,
    /// Its mail logs, as paths on the server (a `*` or `?` in a file name matches rotated
    /// files there): `report --server` and `check shift` read them through its access.
    pub mail_log: Vec<PathBuf>,
    /// Its daemons an upgrade restarts when they run a file the update replaced, in the
    /// order they are restarted.
    pub services: Vec<Service>,
    /// The command that reboots it, when an update asks for a reboot (empty: none; the
    /// upgrade then reports the reboot as left to the admin).
    pub reboot: Vec<String>,
    /// Its update when not apt's (for example a vendor's installer): run as given.
    pub update_command: Vec<String>,
}

/// A daemon of a server, as an upgrade restarts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    /// Its name (unique on its server).
    pub name: String,
    /// Its PID file on the server: the process it names and that process's descendants are
    /// the service's.
    pub pid_file: PathBuf,
    /// How it is restarted.
    pub restart: Restart,
    /// Packages (globs) whose update stops it before the update and starts it after, once
    /// the other servers of its group are seen serving (for a daemon that must not run
    /// half-updated, as Postfix's master spawning new helpers beside an old self).
    pub packages: Vec<String>,
}

/// How a service is restarted (every command an argument vector).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Restart {
    /// Commands run in order (`systemctl restart dovecot`).
    Commands(Vec<Vec<String>>),
    /// A stop, a wait until its main process has exited, a start: for daemons whose stop
    /// returns before they are gone.
    StopStart {
        /// Stops it.
        stop: Vec<String>,
        /// Starts it.
        start: Vec<String>,
    },
}

impl Server {
    /// Whether the server has this role.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Its live logs: the `mail_log` entries naming one file (a pattern names a rotated set,
    /// which `report` reads but nothing follows).
    pub fn live_logs(&self) -> impl Iterator<Item = &PathBuf> {
        self.mail_log.iter().filter(|l| {
            l.file_name()
                .is_some_and(|n| !n.to_string_lossy().contains(['*', '?', '[']))
        })
    }

    /// Mailbox stores: the userdb file of accounts being moved here (its `passwd_file` with
    /// `.incoming` added), which Dovecot reads besides the store's own accounts.
    pub fn incoming_users(&self) -> Option<PathBuf> {
        self.passwd_file.as_ref().map(|p| {
            let mut s = p.clone().into_os_string();
            s.push(".incoming");
            PathBuf::from(s)
        })
    }

    /// The Maildir of an account on this store, in Dovecot's `%d/%n/Maildir` layout.
    pub fn maildir_of(&self, address: &crate::Address) -> Option<PathBuf> {
        self.maildir_root.as_ref().map(|root| {
            root.join(address.domain())
                .join(address.local())
                .join("Maildir")
        })
    }
}

/// All servers and their redundancy groups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Fleet {
    /// Servers in config order.
    pub servers: Vec<Server>,
    /// Group name to member server names.
    pub groups: BTreeMap<String, Vec<String>>,
}

impl Fleet {
    /// The server of that name.
    pub fn server(&self, name: &str) -> Option<&Server> {
        self.servers.iter().find(|s| s.name == name)
    }

    /// Servers with a role, in config order.
    pub fn with_role(&self, role: Role) -> impl Iterator<Item = &Server> {
        self.servers.iter().filter(move |s| s.has_role(role))
    }

    /// The servers named, or having one of the roles, or in one of the groups (their union,
    /// in config order); an unknown name or group is an error naming it. Nothing asked for
    /// selects nothing.
    pub fn select(
        &self,
        names: &[String],
        roles: &[Role],
        groups: &[String],
    ) -> Result<Vec<&Server>, String> {
        for n in names {
            if self.server(n).is_none() {
                let known: Vec<&str> = self.servers.iter().map(|s| s.name.as_str()).collect();
                return Err(format!(
                    "unknown server {n:?} (the config has: {})",
                    known.join(", ")
                ));
            }
        }
        for g in groups {
            if !self.groups.contains_key(g) {
                let known: Vec<&str> = self.groups.keys().map(String::as_str).collect();
                return Err(format!(
                    "unknown group {g:?} (the config has: {})",
                    known.join(", ")
                ));
            }
        }
        Ok(self
            .servers
            .iter()
            .filter(|s| {
                names.contains(&s.name)
                    || roles.iter().any(|r| s.has_role(*r))
                    || s.group.as_ref().is_some_and(|g| groups.contains(g))
            })
            .collect())
    }

    /// Names of the mailbox stores, for error messages.
    pub fn mailbox_names(&self) -> Vec<&str> {
        self.with_role(Role::Mailbox)
            .map(|s| s.name.as_str())
            .collect()
    }
}

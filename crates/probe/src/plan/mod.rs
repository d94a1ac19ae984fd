//! Which checks a fleet gets, from each server's roles and ports; [`run`] runs them all at
//! once: a round takes about as long as its slowest check, not the sum.

use mailfleet_core::{Config, Role, Server};

mod run;

pub(crate) use run::bind_password;
pub use run::{RoundTime, Rounds, round, rounds, run};

/// One check to run.
#[derive(Debug, Clone)]
enum Check {
    /// SMTP/submission/LMTP greeting, TLS, and AUTH where asked.
    Greeting {
        port: u16,
        lmtp: bool,
        name: &'static str,
        implicit: bool,
        auth: bool,
    },
    /// IMAP login, select, fetch.
    Imap { port: u16, implicit: bool },
    /// POP3 login, stat, retr.
    Pop3 { port: u16, implicit: bool },
    /// LDAP bind and search.
    Ldap { port: u16, implicit: bool },
    /// HTTP GET of the server's path.
    Http { port: u16, implicit: bool },
    /// A directory replica's contextCSN against its master's.
    Replica { port: u16, master: Box<Server> },
    /// Through this MTA into a store's probe mailbox.
    E2e { port: u16, store: Box<Server> },
    /// The queue of this MTA's local Postfix.
    Queue { dir: std::path::PathBuf },
    /// The age of the store's newest good backup.
    Backup { status: std::path::PathBuf },
    /// Accounts on this store the directory says are locked.
    Locked,
}

impl Check {
    /// The check's name in outcomes.
    fn name(&self) -> String {
        match self {
            Check::Greeting { name, .. } => (*name).to_string(),
            Check::Imap { implicit, .. } => if *implicit { "imaps" } else { "imap" }.into(),
            Check::Pop3 { implicit, .. } => if *implicit { "pop3s" } else { "pop3" }.into(),
            Check::Ldap { implicit, .. } => if *implicit { "ldaps" } else { "ldap" }.into(),
            Check::Http { implicit, .. } => if *implicit { "https" } else { "http" }.into(),
            Check::Replica { .. } => "replica".into(),
            Check::E2e { store, .. } => format!("e2e:{}", store.name),
            Check::Queue { .. } => "queue".into(),
            Check::Backup { .. } => "backup".into(),
            Check::Locked => "locked".into(),
        }
    }
}

/// The checks of one round.
#[derive(Debug, Clone)]
pub struct Plan {
    checks: Vec<(Server, Check)>,
    /// Servers whose resources are read on them through their access (every one not local).
    resources: Vec<Server>,
    /// Servers with local access: their resources are this machine's, read once as `host`
    /// (but read per copy in a repeated plan, so a load test does a fleet's work).
    local: Vec<Server>,
    /// Whether to check the local machine's resources too.
    host: bool,
    /// Connections to the servers' tools, kept from round to round.
    reach: mailfleet_remote::Reach,
}

/// The name that selects the local machine's resource checks on the command line.
pub const LOCAL: &str = "local";

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A server named on the command line is not in the config.
    #[error("unknown server {0:?}")]
    UnknownServer(String),
    /// A check named on the command line is none of the plan's.
    #[error(
        "no check {0:?} on these servers (names as probe prints them: imap, queue, e2e, resources...)"
    )]
    UnknownCheck(String),
}

impl Plan {
    /// The checks for the named servers (all when `only` is empty).
    pub fn new(config: &Config, only: &[String]) -> Result<Plan, PlanError> {
        for name in only {
            if name != LOCAL && config.fleet.server(name).is_none() {
                return Err(PlanError::UnknownServer(name.clone()));
            }
        }
        let stores: Vec<&Server> = config
            .fleet
            .with_role(Role::Mailbox)
            .filter(|s| s.probe_account.is_some())
            .collect();
        let mut checks = Vec::new();
        for s in &config.fleet.servers {
            if !only.is_empty() && !only.contains(&s.name) {
                continue;
            }
            let p = &s.ports;
            let mut add = |c| checks.push((s.clone(), c));
            let auth = s.probe_account.is_some();
            let greetings = [
                (p.smtp, "smtp", false, false, false),
                (p.submission, "submission", false, false, auth),
                (p.smtps, "smtps", false, true, auth),
                (p.lmtp, "lmtp", true, false, false),
            ];
            for (port, name, lmtp, implicit, auth) in greetings {
                if let Some(port) = port {
                    add(Check::Greeting {
                        port,
                        lmtp,
                        name,
                        implicit,
                        auth,
                    });
                }
            }
            for (port, implicit) in [(p.imap, false), (p.imaps, true)] {
                if let Some(port) = port {
                    add(Check::Imap { port, implicit });
                }
            }
            for (port, implicit) in [(p.pop3, false), (p.pop3s, true)] {
                if let Some(port) = port {
                    add(Check::Pop3 { port, implicit });
                }
            }
            for (port, implicit) in [(p.http, false), (p.https, true)] {
                if let Some(port) = port {
                    add(Check::Http { port, implicit });
                }
            }
            for (port, implicit) in [(p.ldap, false), (p.ldaps, true)] {
                if let Some(port) = port {
                    add(Check::Ldap { port, implicit });
                }
            }
            if let (Some(port), Some(master)) = (
                p.ldap,
                s.replica_of.as_ref().and_then(|m| config.fleet.server(m)),
            ) {
                add(Check::Replica {
                    port,
                    master: Box::new(master.clone()),
                });
            }
            if let Some(status) = &s.backup_status {
                add(Check::Backup {
                    status: status.clone(),
                });
            }
            if s.has_role(Role::Mailbox) {
                add(Check::Locked);
            }
            if let (true, Some(dir)) = (s.has_role(Role::Mta), &s.postfix_dir) {
                add(Check::Queue { dir: dir.clone() });
            }
            if s.has_role(Role::Mta)
                && let Some(port) = p.smtp
            {
                for store in &stores {
                    add(Check::E2e {
                        port,
                        store: Box::new((*store).clone()),
                    });
                }
            }
        }
        let host = only.is_empty() || only.iter().any(|n| n == LOCAL);
        let (local, resources) = config
            .fleet
            .servers
            .iter()
            .filter(|s| only.is_empty() || only.contains(&s.name))
            .cloned()
            .partition(|s| matches!(s.access, mailfleet_remote::Access::Local));
        Ok(Plan {
            checks,
            resources,
            local,
            host,
            reach: mailfleet_remote::Reach::new(),
        })
    }

    /// The same plan with every server check repeated `n` times (load test, benchmark):
    /// copy `k` of server `s` is named `s#k`. With `n > 1` every copy's resources are read
    /// through its access, the local ones' too (by the same script, run here), so a round
    /// over local access does the same work as one over SSH.
    pub fn repeated(&self, n: usize) -> Plan {
        let copy = |s: &Server, k: usize| {
            let mut s = s.clone();
            if n > 1 {
                s.name = format!("{}#{k}", s.name);
            }
            s
        };
        let mut checks = Vec::with_capacity(self.checks.len() * n);
        let mut resources = Vec::with_capacity(self.resources.len() * n);
        for k in 1..=n.max(1) {
            for (s, c) in &self.checks {
                checks.push((copy(s, k), c.clone()));
            }
            resources.extend(self.resources.iter().map(|s| copy(s, k)));
            if n > 1 {
                resources.extend(self.local.iter().map(|s| copy(s, k)));
            }
        }
        Plan {
            checks,
            resources,
            local: if n > 1 {
                Vec::new()
            } else {
                self.local.clone()
            },
            host: self.host,
            reach: self.reach.clone(),
        }
    }

    /// The checks as `(server, check)` pairs, in the order they run (host checks, which
    /// depend on the machine, not listed); whether this machine's resources are checked too.
    pub fn checks(&self) -> (Vec<(String, String)>, bool) {
        let named = self
            .checks
            .iter()
            .map(|(s, c)| (s.name.clone(), c.name()))
            .chain(
                self.resources
                    .iter()
                    .map(|s| (s.name.clone(), "resources".to_string())),
            )
            .collect();
        (named, self.host)
    }

    /// The same plan without reading any machine's resources (the servers' nor this one's):
    /// the protocol checks alone.
    pub fn without_resources(mut self) -> Plan {
        self.resources.clear();
        self.local.clear();
        self.host = false;
        self
    }

    /// Only the checks of these names (`e2e` selects every `e2e:STORE`; `resources` keeps
    /// machines' resources, which are left out otherwise); a name no check has is an error.
    pub fn only_checks(mut self, names: &[String]) -> Result<Plan, PlanError> {
        // `e2e` names every `e2e:STORE`.
        let selects = |n: &str, check: &str| {
            n == check || check.split_once(':').is_some_and(|(kind, _)| kind == n)
        };
        for n in names.iter().filter(|n| *n != "resources") {
            if !self.checks.iter().any(|(_, c)| selects(n, &c.name())) {
                return Err(PlanError::UnknownCheck(n.clone()));
            }
        }
        self.checks
            .retain(|(_, c)| names.iter().any(|n| selects(n, &c.name())));
        if !names.iter().any(|n| n == "resources") {
            self = self.without_resources();
        }
        Ok(self)
    }

    /// The connections to the servers' tools this plan's rounds use.
    pub fn reach(&self) -> &mailfleet_remote::Reach {
        &self.reach
    }

    /// How many server checks the round has (host checks not counted).
    pub fn len(&self) -> usize {
        self.checks.len()
    }

    /// Whether the round has no checks at all.
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty() && self.resources.is_empty() && !self.host
    }
}

//! Which checks a fleet gets, from each server's roles and ports, and running them all at
//! once: a round takes about as long as its slowest check, not the sum.

use mailfleet_core::{Config, Role, Server};

use crate::outcome::{Outcome, Run, unknown};
use crate::{e2e, imap, ldap, pop3, smtp};
use mailfleet_mailclient::tls::{Endpoint, Tls};

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
        }
    }
}

/// The checks of one round.
#[derive(Debug, Clone)]
pub struct Plan {
    checks: Vec<(Server, Check)>,
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
        Ok(Plan {
            checks,
            host,
            reach: mailfleet_remote::Reach::new(),
        })
    }

    /// The same plan with every server check repeated `n` times (load test, benchmark):
    /// copy `k` of server `s` is named `s#k`.
    pub fn repeated(&self, n: usize) -> Plan {
        let mut checks = Vec::with_capacity(self.checks.len() * n);
        for k in 1..=n.max(1) {
            for (s, c) in &self.checks {
                let mut s = s.clone();
                if n > 1 {
                    s.name = format!("{}#{k}", s.name);
                }
                checks.push((s, c.clone()));
            }
        }
        Plan {
            checks,
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
            .collect();
        (named, self.host)
    }

    /// How many server checks the round has (host checks not counted).
    pub fn len(&self) -> usize {
        self.checks.len()
    }

    /// Whether the round has no checks at all.
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty() && !self.host
    }
}

fn first_line(path: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|t| t.lines().next().unwrap_or("").to_string())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The directory's bind password, or why it cannot be read (naming the file).
fn bind_password(l: &mailfleet_core::config::LdapConfig) -> Result<String, String> {
    first_line(&l.password_file).map_err(|e| format!("directory.ldap.password_file {e}"))
}

async fn one(
    config: &Config,
    password: &Result<String, String>,
    server: &Server,
    check: &Check,
    reach: &mailfleet_remote::Reach,
) -> Outcome {
    let pc = &config.probe;
    let mut run = Run::new(pc.timeout);
    let host = server.host.as_str();
    let name = check.name();
    let tls = match Tls::new(&server.tls, host) {
        Ok(t) => t,
        Err(e) => return unknown(&server.name, &name, e.to_string()),
    };
    let at = |port: u16, implicit: bool| Endpoint {
        host,
        port,
        tls: Some(&tls),
        implicit,
    };
    let needs_account = || -> Result<(String, String), Outcome> {
        let account = server
            .probe_account
            .as_ref()
            .ok_or_else(|| unknown(&server.name, &name, "no probe_account set for this server"))?;
        let pw = password
            .clone()
            .map_err(|e| unknown(&server.name, &name, format!("probe password: {e}")))?;
        Ok((account.to_string(), pw))
    };
    let result = match check {
        Check::Greeting {
            port,
            lmtp,
            implicit,
            auth,
            ..
        } => {
            let creds = match auth {
                true => match needs_account() {
                    Ok(c) => Some(c),
                    Err(o) => return o,
                },
                false => None,
            };
            let dialog = smtp::Dialog {
                lmtp: *lmtp,
                auth: creds.as_ref().map(|(a, p)| (a.as_str(), p.as_str())),
            };
            smtp::check(&mut run, &at(*port, *implicit), &dialog).await
        }
        Check::Imap { port, implicit } => match needs_account() {
            Ok((a, pw)) => imap::check(&mut run, &at(*port, *implicit), &a, &pw).await,
            Err(o) => return o,
        },
        Check::Pop3 { port, implicit } => match needs_account() {
            Ok((a, pw)) => pop3::check(&mut run, &at(*port, *implicit), &a, &pw).await,
            Err(o) => return o,
        },
        Check::Ldap { port, implicit } => {
            let (bind, base, attr) = match &config.ldap {
                Some(l) => {
                    // Never an anonymous bind in its place: that would prove nothing.
                    let pw = match bind_password(l) {
                        Ok(pw) => pw,
                        Err(e) => return unknown(&server.name, &name, e),
                    };
                    (
                        Some((l.bind_dn.as_str(), pw)),
                        l.base_dn.as_str(),
                        l.attributes.address.as_str(),
                    )
                }
                None => (None, "", "mail"),
            };
            let probe = config
                .fleet
                .servers
                .iter()
                .find_map(|s| s.probe_account.as_ref());
            let filter = match probe {
                Some(a) => format!("({attr}={a})"),
                None => "(objectClass=*)".to_string(),
            };
            let scheme = if *implicit { "ldaps" } else { "ldap" };
            let target = ldap::LdapTarget {
                url: format!("{scheme}://{host}:{port}"),
                tls: Some(&tls),
                bind,
                base_dn: base,
                filter,
            };
            ldap::check(&mut run, &target, pc.timeout).await
        }
        Check::Replica { port, master } => {
            let bind_pw = match &config.ldap {
                Some(l) => match bind_password(l) {
                    Ok(pw) => Some((l.bind_dn.clone(), pw)),
                    Err(e) => return unknown(&server.name, &name, e),
                },
                None => None,
            };
            let bind = bind_pw.as_ref().map(|(d, p)| (d.as_str(), p.as_str()));
            let master_url = format!(
                "ldap://{}:{}",
                master.host,
                master.ports.ldap.unwrap_or(389)
            );
            async {
                let master_tls = Tls::new(&master.tls, &master.host)
                    .map_err(|e| crate::outcome::Failure::new("tls", e))?;
                let theirs = crate::ldap::context_csn(
                    &mut run,
                    &master_url,
                    Some(&master_tls),
                    bind,
                    pc.timeout,
                )
                .await?;
                let ours = crate::ldap::context_csn(
                    &mut run,
                    &format!("ldap://{host}:{port}"),
                    Some(&tls),
                    bind,
                    pc.timeout,
                )
                .await?;
                match (theirs, ours) {
                    (None, _) => Ok(format!("{} has no contextCSN yet", master.name)),
                    (Some(t), Some(o)) if t == o => {
                        Ok(format!("in sync with {} ({t})", master.name))
                    }
                    (Some(t), o) => {
                        let newest = crate::ldap::csn_time(&t).unwrap_or_else(chrono::Utc::now);
                        let waiting = (chrono::Utc::now() - newest).to_std().unwrap_or_default();
                        let msg = format!(
                            "behind {}: has {}, master {t}; the master's newest change waits {} s",
                            master.name,
                            o.as_deref().unwrap_or("nothing"),
                            waiting.as_secs()
                        );
                        if waiting > server.replica_max_lag {
                            Err(crate::outcome::Failure::new("compare", msg))
                        } else {
                            Ok(msg)
                        }
                    }
                }
            }
            .await
        }
        Check::Http { port, implicit } => {
            crate::http::check(&mut run, &at(*port, *implicit), &server.http_path).await
        }
        Check::Backup { status } => {
            let (file, max_age, timeout) = (status.clone(), server.backup_max_age, pc.timeout);
            let t = std::time::Instant::now();
            let (state, message) =
                tokio::task::spawn_blocking(move || crate::backup::check(&file, max_age, timeout))
                    .await
                    .unwrap_or((crate::State::Unknown, "the check panicked".into()));
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            return Outcome {
                server: server.name.clone(),
                check: "backup".into(),
                state,
                elapsed_ms: ms,
                steps: vec![crate::Step { name: "read", ms }],
                message,
            };
        }
        Check::Queue { dir } => {
            let postfix = mailfleet_core::postfix::Postfix::new(
                reach,
                &server.name,
                &server.access,
                Some(dir),
            );
            let r = crate::queue::read(&mut run, &postfix, pc.timeout).await;
            let outcome = match r {
                Ok(q) => {
                    let sizes: Vec<String> =
                        q.sizes.iter().map(|(k, v)| format!("{k} {v}")).collect();
                    let top: Vec<String> = q
                        .top_destinations
                        .iter()
                        .map(|(d, n)| format!("{d} {n}"))
                        .collect();
                    let oldest = q
                        .oldest
                        .map_or(String::new(), |o| format!(", oldest {} s", o.as_secs()));
                    let msg = format!(
                        "{} messages ({}){oldest}{}",
                        q.total,
                        if sizes.is_empty() {
                            "empty".into()
                        } else {
                            sizes.join(", ")
                        },
                        if top.is_empty() {
                            String::new()
                        } else {
                            format!("; waiting for {}", top.join(", "))
                        }
                    );
                    let mut o = run.finish(&server.name, "queue", Ok(msg), pc.warning, pc.critical);
                    if q.total > pc.queue_critical {
                        o.state = crate::State::Critical;
                    } else if q.total > pc.queue_warning && o.state < crate::State::Warning {
                        o.state = crate::State::Warning;
                    }
                    o
                }
                Err(f) => run.finish(&server.name, "queue", Err(f), pc.warning, pc.critical),
            };
            return outcome;
        }
        Check::E2e { port, store } => {
            let (Some(account), Some(imap_port)) = (&store.probe_account, store.ports.imap) else {
                return unknown(
                    &server.name,
                    &name,
                    "the store has no probe_account or imap port",
                );
            };
            let pw = match password {
                Ok(pw) => pw.clone(),
                Err(e) => return unknown(&server.name, &name, format!("probe password: {e}")),
            };
            let store_tls = match Tls::new(&store.tls, &store.host) {
                Ok(t) => t,
                Err(e) => return unknown(&server.name, &name, e.to_string()),
            };
            let account = account.to_string();
            let route = e2e::Route {
                mta: at(*port, false),
                store: Endpoint {
                    host: &store.host,
                    port: imap_port,
                    tls: Some(&store_tls),
                    implicit: false,
                },
                account: &account,
                password: &pw,
                stale_after: pc.timeout,
            };
            e2e::check(&mut run, &route).await
        }
    };
    run.finish(&server.name, &name, result, pc.warning, pc.critical)
}

/// `probe [SERVER...]`: one round on the named servers (all, and this machine's resources,
/// when none is named), each server probed `repeat` times at once (a load test).
pub async fn round(
    config: &Config,
    servers: &[String],
    repeat: usize,
) -> Result<Vec<Outcome>, PlanError> {
    let plan = Plan::new(config, servers)?.repeated(repeat);
    Ok(run(config, &plan).await)
}

/// Runs every check of the plan concurrently.
pub async fn run(config: &Config, plan: &Plan) -> Vec<Outcome> {
    let password = match &config.probe.password_file {
        Some(p) => first_line(p),
        None => Err("no [probe] password_file in the config".to_string()),
    };
    let futures = plan
        .checks
        .iter()
        .map(|(s, c)| one(config, &password, s, c, &plan.reach));
    let host = async {
        if !plan.host {
            return Vec::new();
        }
        let pc = &config.probe;
        let limits = crate::host::Limits {
            warning: pc.resource_warning_pct,
            critical: pc.resource_critical_pct,
        };
        let timeout = pc.timeout;
        // /proc reads and statvfs block: off the async threads (statvfs on threads of its own).
        tokio::task::spawn_blocking(move || {
            crate::host::check(&crate::host::hostname(), limits, timeout, &[])
        })
        .await
        .unwrap_or_default()
    };
    let (mut outcomes, host) = futures::join!(futures::future::join_all(futures), host);
    outcomes.extend(host);
    outcomes
}

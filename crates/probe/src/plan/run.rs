//! Running a plan's checks: every check of a round at once (each with its own deadline),
//! the servers' resources beside them, rounds one after the other over the same connections.

use mailfleet_core::{Config, Server};
use mailfleet_mailclient::tls::{Endpoint, Tls};

use super::{Check, Plan, PlanError};
use crate::outcome::{Outcome, Run, unknown};
use crate::{e2e, imap, ldap, pop3, smtp};

fn first_line(path: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|t| t.lines().next().unwrap_or("").to_string())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The directory's bind password, or why it cannot be read (naming the file).
pub(crate) fn bind_password(l: &mailfleet_core::config::LdapConfig) -> Result<String, String> {
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
    // Boxed: an outcome is large and this is its rare path.
    let needs_account = || -> Result<(String, String), Box<Outcome>> {
        let account = server.probe_account.as_ref().ok_or_else(|| {
            Box::new(unknown(
                &server.name,
                &name,
                "no probe_account set for this server",
            ))
        })?;
        let pw = password
            .clone()
            .map_err(|e| Box::new(unknown(&server.name, &name, format!("probe password: {e}"))))?;
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
                    Err(o) => return *o,
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
            Err(o) => return *o,
        },
        Check::Pop3 { port, implicit } => match needs_account() {
            Ok((a, pw)) => pop3::check(&mut run, &at(*port, *implicit), &a, &pw).await,
            Err(o) => return *o,
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
                value: None,
            };
        }
        Check::Locked => crate::locked::check(&mut run, &config.directory, &server.name).await,
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
                    let mut o = run
                        .finish(&server.name, "queue", Ok(msg), pc.warning, pc.critical)
                        .with_value(q.total as f64);
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
    let r = Rounds {
        servers: servers.to_vec(),
        repeat,
        n: 1,
        resources: true,
        checks: Vec::new(),
    };
    Ok(rounds(config, &r).await?.0)
}

/// What `probe --rounds` runs: which servers and checks, how often.
#[derive(Debug, Clone, Default)]
pub struct Rounds {
    /// Servers by name (all when empty; `local` is this machine's resources).
    pub servers: Vec<String>,
    /// Probe every server this many times at once (a load test).
    pub repeat: usize,
    /// Rounds one after the other, over the same connections.
    pub n: usize,
    /// Whether machines' resources are read.
    pub resources: bool,
    /// Only checks of these names (`e2e` for every `e2e:STORE`, `resources` for machines'
    /// resources); all when empty.
    pub checks: Vec<String>,
}

/// Runs the rounds one after the other over the same plan and so the same connections: the
/// last round's outcomes, and each round's time and the SSH handshakes it made.
pub async fn rounds(
    config: &Config,
    r: &Rounds,
) -> Result<(Vec<Outcome>, Vec<RoundTime>), PlanError> {
    let mut plan = Plan::new(config, &r.servers)?.repeated(r.repeat.max(1));
    if !r.resources {
        plan = plan.without_resources();
    }
    if !r.checks.is_empty() {
        plan = plan.only_checks(&r.checks)?;
    }
    let mut times = Vec::new();
    let mut last = Vec::new();
    for _ in 0..r.n.max(1) {
        let before = plan.reach.handshakes();
        let started = std::time::Instant::now();
        last = run(config, &plan).await;
        times.push(RoundTime {
            ms: started.elapsed().as_secs_f64() * 1000.0,
            handshakes: plan.reach.handshakes() - before,
        });
    }
    Ok((last, times))
}

/// How long one round took.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct RoundTime {
    /// Wall time of the round (ms).
    pub ms: f64,
    /// SSH connections it had to make.
    pub handshakes: u64,
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
    let pc = &config.probe;
    let limits = crate::host::Limits {
        warning: pc.resource_warning_pct,
        critical: pc.resource_critical_pct,
    };
    let timeout = pc.timeout;
    let host = async {
        if !plan.host {
            return Vec::new();
        }
        // /proc reads and statvfs block: off the async threads (statvfs on threads of its own).
        tokio::task::spawn_blocking(move || {
            crate::host_local::check(&crate::host_local::hostname(), limits, timeout, &[])
        })
        .await
        .unwrap_or_default()
    };
    let remote = futures::future::join_all(
        plan.resources
            .iter()
            .map(|s| crate::host_remote::check(&plan.reach, s, limits, timeout)),
    );
    let (mut outcomes, host, remote) =
        futures::join!(futures::future::join_all(futures), host, remote);
    outcomes.extend(host);
    outcomes.extend(remote.into_iter().flatten());
    outcomes
}

//! Bringing the whole stack up, reporting on it, and taking it down.

use std::path::{Path, PathBuf};
use std::process::Child;

use serde::{Deserialize, Serialize};

use crate::layout::{LDAP, LDAP_REPLICA, Layout, MTAS, PROXY, STORES, auth_of, daemon_host};
use crate::ports::{DEFAULT_BASE, StackPorts};
use crate::process::{self, is_running, read_pid};
use crate::{StackError, demo, dovecot, install, io_err, postfix, redis, slapd};

/// What `up` needs to know.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// The base directory.
    pub base: PathBuf,
    /// The loopback address to bind.
    pub host: String,
    /// Ports; `None` reuses the last ones in this base, else the defaults.
    pub ports: Option<StackPorts>,
    /// Install missing Debian packages first.
    pub install: bool,
}

/// Ports and paths of a stack, kept in `stack.json` in its base directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackInfo {
    /// The base directory.
    pub base: PathBuf,
    /// The address everything binds to.
    pub host: String,
    /// The ports.
    pub ports: StackPorts,
    /// The generated `mailfleet.toml`.
    pub config: PathBuf,
}

/// The result of `up`.
#[derive(Debug)]
pub struct Started {
    /// The stack.
    pub info: StackInfo,
    /// True if it was running already and nothing was started.
    pub already_running: bool,
    /// Daemons that are this process's children (slapd): reap them after stopping.
    pub children: Vec<Child>,
}

/// One daemon's state.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    /// Its name.
    pub service: String,
    /// Its PID, if its PID file names a running process.
    pub pid: Option<i32>,
    /// `host:port` it serves.
    pub endpoints: Vec<String>,
    /// Whether every endpoint accepts connections.
    pub listening: bool,
}

/// The services and their PID files and command names, in stop order.
fn services(layout: &Layout) -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = MTAS
        .iter()
        .map(|m| (m.to_string(), layout.postfix_pid_of(m)))
        .collect();
    for s in STORES {
        v.push((s.to_string(), layout.dovecot_pid(s)));
    }
    v.push((PROXY.to_string(), layout.dovecot_pid(PROXY)));
    for m in MTAS {
        let auth = auth_of(m);
        v.push((auth.clone(), layout.dovecot_pid(&auth)));
    }
    v.push(("ldap1".into(), layout.slapd_pid()));
    v.push(("ldap2".into(), layout.ldap_replica().join("slapd.pid")));
    v.push(("redis".into(), layout.redis_pid()));
    for (server, _) in crate::layout::SSH_SERVERS {
        v.push((
            format!("{server}-sshd"),
            layout.sshd(server, "", 0).pid_file(),
        ));
    }
    v
}

fn running(layout: &Layout) -> Vec<String> {
    services(layout)
        .into_iter()
        .filter(|(_, pid)| read_pid(pid).is_some_and(is_running))
        .map(|(name, _)| name)
        .collect()
}

/// Reads `stack.json`, if this base has one.
pub fn read_info(base: &Path) -> Result<Option<StackInfo>, StackError> {
    let path = Layout::new(base).info_file();
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            StackError::State(format!(
                "{}: unreadable ({e}); remove it after checking nothing of this stack runs",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path)(e)),
    }
}

/// Starts the stack, or finds it running already. A partly running stack is an error.
pub async fn up(opts: &StackOptions) -> Result<Started, StackError> {
    if install::check().is_err() && opts.install {
        install::install()?;
    }
    install::check()?;
    let layout = Layout::new(&opts.base);
    let previous = read_info(&layout.base)?;
    let up_now = running(&layout);
    if let Some(info) = &previous
        && !up_now.is_empty()
    {
        if up_now.len() == services(&layout).len() {
            return Ok(Started {
                info: info.clone(),
                already_running: true,
                children: Vec::new(),
            });
        }
        return Err(StackError::State(format!(
            "the stack in {} is partly running ({}): run `mailfleet demo down --base {}` first",
            layout.base.display(),
            up_now.join(", "),
            layout.base.display()
        )));
    }
    let ports = match (&opts.ports, &previous) {
        (Some(p), _) => p.clone(),
        (None, Some(info)) => info.ports.clone(),
        // DEFAULT_BASE leaves room for every offset.
        (None, None) => StackPorts::from_base(DEFAULT_BASE).unwrap_or_else(|| unreachable!()),
    };
    let info = StackInfo {
        base: layout.base.clone(),
        host: opts.host.clone(),
        ports,
        config: layout.config_file(),
    };
    check_ports_free(&info)?;
    prepare(&layout, &info)?;
    let mut children = Vec::new();
    match start_all(&layout, &info, &mut children).await {
        Ok(()) => Ok(Started {
            info,
            already_running: false,
            children,
        }),
        Err(e) => {
            let _ = down(&layout.base);
            for mut c in children {
                let _ = c.wait();
            }
            Err(e)
        }
    }
}

/// Where each service of the stack listens, by service name (as in [`services`]): the
/// protocol, address and port of each endpoint.
fn endpoints(info: &StackInfo, service: &str) -> Vec<(&'static str, String, u16)> {
    let p = &info.ports;
    let at = |server: &str, ports: &[(&'static str, u16)]| {
        let host = daemon_host(&info.host, server);
        ports
            .iter()
            .map(|(proto, port)| (*proto, host.clone(), *port))
            .collect::<Vec<_>>()
    };
    if let Some(server) = service.strip_suffix("-sshd") {
        return vec![("ssh", crate::layout::own_host(&info.host, server), p.ssh)];
    }
    if let Some(mta) = service.strip_suffix("-auth") {
        return at(mta, &[("sasl", p.sasl)]);
    }
    if MTAS.contains(&service) {
        return at(service, &[("smtp", p.smtp), ("submission", p.submission)]);
    }
    if let Some(i) = STORES.iter().position(|s| *s == service) {
        let s = &p.stores[i];
        return at(
            service,
            &[
                ("imap", s.imap),
                ("pop3", s.pop3),
                ("lmtp", s.lmtp),
                ("imaps", s.imaps),
                ("pop3s", s.pop3s),
                ("doveadm", s.doveadm),
            ],
        );
    }
    match service {
        PROXY => at(service, &[("imap", p.proxy.imap), ("pop3", p.proxy.pop3)]),
        "ldap1" => at(service, &[("ldap", p.ldap)]),
        "ldap2" => at(service, &[("ldap", p.ldap_replica)]),
        "redis" => at(service, &[("redis", p.redis)]),
        _ => Vec::new(),
    }
}

/// Every listener of the stack: `(service, protocol, address, port)`, in the services'
/// order (so `mx1` before `mx2`, which uses the same port numbers on its own address).
pub fn listeners(info: &StackInfo) -> Vec<(String, &'static str, String, u16)> {
    let layout = Layout::new(&info.base);
    services(&layout)
        .into_iter()
        .flat_map(|(service, _)| {
            endpoints(info, &service)
                .into_iter()
                .map(move |(proto, host, port)| (service.clone(), proto, host, port))
        })
        .collect()
}

/// Every port must be free: a daemon that cannot bind may still "start" (Postfix's master
/// logs the failure and runs on), and another program on the port would pass for it.
fn check_ports_free(info: &StackInfo) -> Result<(), StackError> {
    let layout = Layout::new(&info.base);
    let all = services(&layout).into_iter().flat_map(|(service, _)| {
        endpoints(info, &service)
            .into_iter()
            .map(move |(proto, host, port)| (format!("{service} {proto}"), host, port))
    });
    let busy: Vec<String> = all
        .filter(|(_, host, port)| std::net::TcpListener::bind((host.as_str(), *port)).is_err())
        .map(|(service, host, port)| format!("{host}:{port} ({service})"))
        .collect();
    if busy.is_empty() {
        return Ok(());
    }
    Err(StackError::PortsBusy {
        host: info.host.clone(),
        busy: busy.join(", "),
    })
}

/// Creates the base directory, records the stack and writes its `mailfleet.toml`.
fn prepare(layout: &Layout, info: &StackInfo) -> Result<(), StackError> {
    for d in [layout.base.clone(), layout.log_dir(), layout.data_dir()] {
        std::fs::create_dir_all(&d).map_err(io_err(&d))?;
    }
    // Dovecot's and Postfix's unprivileged processes must traverse the base (a temp dir is 0700).
    process::run(
        std::process::Command::new("chmod")
            .arg("0755")
            .arg(&layout.base),
    )?;
    check_searchable(&layout.base)?;
    crate::apt::prepare_repo(&layout.apt_repo())?;
    for (server, _) in crate::layout::SSH_SERVERS {
        crate::apt::prepare_root(&layout.package_root(server), &layout.apt_repo())?;
    }
    let json = serde_json::to_string_pretty(info).map_err(|e| StackError::State(e.to_string()))?;
    let path = layout.info_file();
    std::fs::write(&path, json).map_err(io_err(&path))?;
    let secret = layout.probe_secret();
    std::fs::write(&secret, format!("{}\n", demo::DEMO_PASSWORD)).map_err(io_err(&secret))?;
    let doveadm = layout.doveadm_secret();
    if !doveadm.exists() {
        // Random, read by Dovecot's config process as root only.
        let mut bytes = [0u8; 16];
        std::io::Read::read_exact(
            &mut std::fs::File::open("/dev/urandom").map_err(io_err(Path::new("/dev/urandom")))?,
            &mut bytes,
        )
        .map_err(io_err(Path::new("/dev/urandom")))?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(&doveadm, format!("{hex}\n")).map_err(io_err(&doveadm))?;
        std::fs::set_permissions(
            &doveadm,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .map_err(io_err(&doveadm))?;
    }
    let path = layout.config_file();
    let text = demo::config_text(layout, &info.host, &info.ports, "embedded");
    std::fs::write(&path, text).map_err(io_err(&path))
}

/// Every directory above the base must let other users through, or the daemons' unprivileged
/// processes fail later with obscure permission errors.
fn check_searchable(base: &Path) -> Result<(), StackError> {
    use std::os::unix::fs::PermissionsExt;
    for dir in base.ancestors().skip(1) {
        let mode = std::fs::metadata(dir)
            .map_err(io_err(dir))?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            return Err(StackError::State(format!(
                "{} (mode {:o}) is not searchable by other users: Dovecot and Postfix run as unprivileged users and must reach {}; choose a base elsewhere or chmod o+x it",
                dir.display(),
                mode & 0o7777,
                base.display()
            )));
        }
    }
    Ok(())
}

async fn start_all(
    layout: &Layout,
    info: &StackInfo,
    children: &mut Vec<Child>,
) -> Result<(), StackError> {
    let host = &info.host;
    let p = &info.ports;
    start_sshds(layout, info)?;
    redis::start(layout, host, p.redis)?;
    let certs = crate::certs::ensure(&layout.tls_dir(), host)?;
    if !layout.ldap().join("db").join("data.mdb").exists() {
        slapd::configure(layout, &certs)?;
    }
    let (ldap1, ldap2) = (daemon_host(host, LDAP), daemon_host(host, LDAP_REPLICA));
    children.push(slapd::start(
        &layout.ldap(),
        &layout.log_dir().join("slapd.log"),
        &ldap1,
        p.ldap,
    )?);
    slapd::configure_replica(layout, &ldap1, p.ldap, &certs)?;
    let replica_log = layout.log_dir().join("slapd-replica.log");
    children.push(slapd::start(
        &layout.ldap_replica(),
        &replica_log,
        &ldap2,
        p.ldap_replica,
    )?);
    for (store, sp) in STORES.iter().zip(&p.stores) {
        let at = daemon_host(host, store);
        dovecot::configure(layout, store, &at, sp, &certs)?;
        dovecot::start(layout, store, &at, sp)?;
    }
    for mta in MTAS {
        let at = daemon_host(host, mta);
        dovecot::configure_auth(layout, &auth_of(mta), &at, p.sasl)?;
        dovecot::start_auth(layout, &auth_of(mta), &at, p.sasl)?;
        postfix::configure(layout, mta, &at, p, &certs)?;
    }
    let proxy_at = daemon_host(host, PROXY);
    crate::proxy::configure(layout, &proxy_at, &p.proxy)?;
    // Seeding publishes routing, the proxy's user files included, before it starts.
    demo::seed(layout, host, p).await?;
    crate::proxy::start(layout, &proxy_at, &p.proxy)?;
    for mta in MTAS {
        postfix::start(layout, mta, &daemon_host(host, mta), p)?;
    }
    Ok(())
}

/// Every demo server's own sshd, with the operator key allowed in and `known_hosts` listing
/// each server's host key.
fn start_sshds(layout: &Layout, info: &StackInfo) -> Result<(), StackError> {
    let files = layout.ssh_files();
    files.ensure()?;
    let sshds: Vec<_> = crate::layout::ssh_hosts(&info.host)
        .into_iter()
        .map(|(server, addr)| layout.sshd(server, &addr, info.ports.ssh))
        .collect();
    for s in &sshds {
        s.configure(&files)?;
    }
    let known: Vec<_> = sshds
        .iter()
        .map(|s| (s.host.clone(), s.port, s.host_key()))
        .collect();
    files.write_known_hosts(&known)?;
    for s in &sshds {
        s.start()?;
    }
    Ok(())
}

/// Stops every daemon of the stack in `base` by its PID; returns what was stopped.
pub fn down(base: &Path) -> Result<Vec<(String, i32)>, StackError> {
    let layout = Layout::new(base);
    let mut stopped = Vec::new();
    let mut errors = Vec::new();
    // The daemon watching the fleet first: it would only alarm about the others going.
    match crate::serve::stop(base) {
        Ok(Some(pid)) => stopped.push(("mailfleet serve".to_string(), pid)),
        Ok(None) => {}
        Err(e) => errors.push(e.to_string()),
    }
    for (name, _) in services(&layout) {
        let r = match name.as_str() {
            mta if MTAS.contains(&mta) => postfix::stop(&layout, mta),
            "ldap1" => slapd::stop(&layout.ldap()),
            "ldap2" => slapd::stop(&layout.ldap_replica()),
            "redis" => redis::stop(&layout),
            sshd if sshd.ends_with("-sshd") => {
                layout.sshd(sshd.trim_end_matches("-sshd"), "", 0).stop()
            }
            store => dovecot::stop(&layout, store),
        };
        match r {
            Ok(Some(pid)) => stopped.push((name, pid)),
            Ok(None) => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(stopped)
    } else {
        Err(StackError::State(errors.join("; ")))
    }
}

/// The state of every daemon of the stack in `base`.
pub fn status(base: &Path) -> Result<Option<Vec<ServiceStatus>>, StackError> {
    let layout = Layout::new(base);
    let Some(info) = read_info(&layout.base)? else {
        return Ok(None);
    };
    let out = services(&layout)
        .into_iter()
        .map(|(service, pid_file)| {
            let endpoints: Vec<(String, u16)> = endpoints(&info, &service)
                .into_iter()
                .map(|(_, host, port)| (host, port))
                .collect();
            let pid = read_pid(&pid_file).filter(|p| is_running(*p));
            ServiceStatus {
                service,
                pid,
                listening: pid.is_some()
                    && endpoints
                        .iter()
                        .all(|(host, port)| process::listening(host, *port)),
                endpoints: endpoints
                    .iter()
                    .map(|(host, port)| format!("{host}:{port}"))
                    .collect(),
            }
        })
        .collect();
    Ok(Some(out))
}

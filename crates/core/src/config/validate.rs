//! Turns the raw file into a typed [`Config`], collecting every problem with the key it concerns.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{
    DirectoryBackend, RawConfig, RawLdap, RawMonitor, RawProbe, RawServer, RawState, StateBackend,
};
use super::{
    Config, DirectoryConfig, LdapAttributes, LdapConfig, MonitorConfig, ProbeConfig, Problem,
    StateConfig,
};
use crate::fleet::{Fleet, Role, Server};

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }
}

pub(super) fn validate(
    raw: RawConfig,
    base: &Path,
    source: PathBuf,
) -> Result<Config, Vec<Problem>> {
    let mut p = Problems::default();
    let data_dir = match &raw.data_dir {
        Some(d) if d.as_os_str().is_empty() => {
            p.add("data_dir", "is empty");
            resolve(base, Path::new("mailfleet-data"))
        }
        Some(d) => resolve(base, d),
        None => resolve(base, Path::new("mailfleet-data")),
    };
    let ldap = raw.directory.ldap.as_ref().map(|l| ldap(l, base, &mut p));
    let directory = directory(&raw, &data_dir, ldap.clone(), &mut p);
    let state = state(&raw.state, &data_dir, base, &mut p);
    let probe = probe(&raw.probe, base, &mut p);
    let monitor = monitor(&raw.monitor, &mut p);
    let mut shift_logs = Vec::new();
    for (i, l) in raw.shift.logs.iter().flatten().enumerate() {
        if l.as_os_str().is_empty() {
            p.add(format!("shift.logs[{i}]"), "is empty");
        } else {
            shift_logs.push(resolve(base, l));
        }
    }
    let fleet = fleet(raw.servers, raw.groups, base, &mut p);
    if p.0.is_empty() {
        Ok(Config {
            source,
            data_dir,
            directory,
            state,
            fleet,
            probe,
            monitor,
            shift_logs,
            ldap,
        })
    } else {
        Err(p.0)
    }
}

fn directory(
    raw: &RawConfig,
    data_dir: &Path,
    ldap: Option<LdapConfig>,
    p: &mut Problems,
) -> DirectoryConfig {
    let embedded = || DirectoryConfig::Embedded {
        path: raw
            .directory
            .path
            .as_ref()
            .map_or_else(|| data_dir.join("accounts.db"), |f| resolve(data_dir, f)),
    };
    match raw.directory.backend {
        DirectoryBackend::Embedded => embedded(),
        DirectoryBackend::Ldap => match ldap {
            None => {
                p.add(
                    "directory.ldap",
                    "missing: backend = \"ldap\" needs a [directory.ldap] section with url, base_dn, bind_dn and password_file",
                );
                embedded()
            }
            Some(l) => DirectoryConfig::Ldap(Box::new(l)),
        },
    }
}

fn required(value: &Option<String>, key: &str, p: &mut Problems) -> String {
    match value.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => v.to_string(),
        _ => {
            p.add(key, "missing or empty");
            String::new()
        }
    }
}

fn ldap(l: &RawLdap, base: &Path, p: &mut Problems) -> LdapConfig {
    let url = required(&l.url, "directory.ldap.url", p);
    if !url.is_empty() && !url.starts_with("ldap://") && !url.starts_with("ldaps://") {
        p.add(
            "directory.ldap.url",
            format!("{url:?} is not an ldap:// or ldaps:// URL"),
        );
    }
    let base_dn = required(&l.base_dn, "directory.ldap.base_dn", p);
    if !base_dn.is_empty() && !base_dn.contains('=') {
        p.add(
            "directory.ldap.base_dn",
            format!("{base_dn:?} is not a DN (like ou=people,dc=example,dc=com)"),
        );
    }
    let bind_dn = required(&l.bind_dn, "directory.ldap.bind_dn", p);
    let password_file = match &l.password_file {
        Some(f) if !f.as_os_str().is_empty() => resolve(base, f),
        _ => {
            p.add(
                "directory.ldap.password_file",
                "missing: the bind password is read from a file, never from the config or command line",
            );
            PathBuf::new()
        }
    };
    let timeout_secs = l.timeout_secs.unwrap_or(10);
    if !(1..=3600).contains(&timeout_secs) {
        p.add(
            "directory.ldap.timeout_secs",
            format!("{timeout_secs} is out of range 1-3600"),
        );
    }
    let object_classes = l.object_classes.clone().unwrap_or_else(|| {
        [
            "inetOrgPerson",
            "inetLocalMailRecipient",
            "mailfleetAccount",
        ]
        .map(String::from)
        .to_vec()
    });
    if object_classes.is_empty() {
        p.add("directory.ldap.object_classes", "is empty");
    }
    let a = &l.attributes;
    let mut attr = |v: &Option<String>, key: &str, default: &str| {
        let name = v.clone().unwrap_or_else(|| default.to_string());
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';')
        {
            p.add(
                format!("directory.ldap.attributes.{key}"),
                format!("{name:?} is not an attribute name"),
            );
        }
        name
    };
    let attributes = LdapAttributes {
        address: attr(&a.address, "address", "mail"),
        mailbox_server: attr(&a.mailbox_server, "mailbox_server", "mailHost"),
        password_hash: attr(&a.password_hash, "password_hash", "userPassword"),
        status: attr(&a.status, "status", "mailfleetStatus"),
        block_reason: attr(&a.block_reason, "block_reason", "mailfleetBlockReason"),
        blocked_at: attr(&a.blocked_at, "blocked_at", "mailfleetBlockedAt"),
    };
    LdapConfig {
        url,
        base_dn,
        bind_dn,
        password_file,
        timeout: Duration::from_secs(timeout_secs.clamp(1, 3600) as u64),
        object_classes,
        attributes,
    }
}

fn state(s: &RawState, data_dir: &Path, _base: &Path, p: &mut Problems) -> StateConfig {
    let embedded = StateConfig::Embedded {
        path: s
            .path
            .as_ref()
            .map_or_else(|| data_dir.join("state.db"), |f| resolve(data_dir, f)),
    };
    match s.backend {
        StateBackend::Embedded => {
            if s.url.is_some() {
                p.add("state.url", "only used with backend = \"redis\"");
            }
            embedded
        }
        StateBackend::Redis => {
            let url = required(&s.url, "state.url", p);
            let schemes = ["redis://", "rediss://", "unix://", "redis+unix://"];
            if !url.is_empty() && !schemes.iter().any(|s| url.starts_with(s)) {
                p.add(
                    "state.url",
                    format!("{url:?} is not a redis://, rediss:// or unix:// URL"),
                );
            }
            if s.path.is_some() {
                p.add("state.path", "only used with backend = \"embedded\"");
            }
            StateConfig::Redis { url }
        }
    }
}

fn probe(r: &RawProbe, base: &Path, p: &mut Problems) -> ProbeConfig {
    let mut ms = |v: Option<i64>, key: &str, default: i64, max: i64| {
        let v = v.unwrap_or(default);
        if !(1..=max).contains(&v) {
            p.add(
                format!("probe.{key}"),
                format!("{v} is out of range 1-{max}"),
            );
        }
        Duration::from_millis(v.clamp(1, max) as u64)
    };
    let warning = ms(r.warning_ms, "warning_ms", 2_000, 300_000);
    let critical = ms(r.critical_ms, "critical_ms", 5_000, 300_000);
    if warning > critical {
        p.add("probe.warning_ms", "is above probe.critical_ms");
    }
    let secs = r.timeout_secs.unwrap_or(10);
    if !(1..=300).contains(&secs) {
        p.add(
            "probe.timeout_secs",
            format!("{secs} is out of range 1-300"),
        );
    }
    let timeout = Duration::from_secs(secs.clamp(1, 300) as u64);
    let mut bounded = |v: Option<i64>, key: &str, default: i64, max: i64| {
        let v = v.unwrap_or(default);
        if !(0..=max).contains(&v) {
            p.add(
                format!("probe.{key}"),
                format!("{v} is out of range 0-{max}"),
            );
        }
        v.clamp(0, max)
    };
    let rw = bounded(r.resource_warning_pct, "resource_warning_pct", 75, 100);
    let rc = bounded(r.resource_critical_pct, "resource_critical_pct", 90, 100);
    let qw = bounded(r.queue_warning, "queue_warning", 100, i64::MAX);
    let qc = bounded(r.queue_critical, "queue_critical", 1000, i64::MAX);
    if rw > rc {
        p.add(
            "probe.resource_warning_pct",
            "is above probe.resource_critical_pct",
        );
    }
    if qw > qc {
        p.add("probe.queue_warning", "is above probe.queue_critical");
    }
    ProbeConfig {
        password_file: r.password_file.as_ref().map(|f| resolve(base, f)),
        timeout,
        warning,
        critical,
        resource_warning_pct: rw as u8,
        resource_critical_pct: rc as u8,
        queue_warning: qw as u64,
        queue_critical: qc as u64,
    }
}

fn monitor(r: &RawMonitor, p: &mut Problems) -> MonitorConfig {
    let mut int = |v: Option<i64>, key: &str, default: i64, min: i64, max: i64| {
        let v = v.unwrap_or(default);
        if !(min..=max).contains(&v) {
            p.add(
                format!("monitor.{key}"),
                format!("{v} is out of range {min}-{max}"),
            );
        }
        v.clamp(min, max)
    };
    let interval = Duration::from_secs(int(r.interval_secs, "interval_secs", 60, 1, 86_400) as u64);
    let confirm_rounds = int(r.confirm_rounds, "confirm_rounds", 2, 1, 100) as u32;
    let repeat = Duration::from_secs(60 * int(r.repeat_mins, "repeat_mins", 60, 1, 100_000) as u64);
    let flap_window = int(r.flap_window, "flap_window", 10, 2, 1000) as usize;
    let flap_changes = int(r.flap_changes, "flap_changes", 4, 2, 1000) as usize;
    let retention =
        Duration::from_secs(86_400 * int(r.retention_days, "retention_days", 30, 1, 3650) as u64);
    let listen = r.listen.as_deref().and_then(|l| match l.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            p.add(
                "monitor.listen",
                format!("{l:?} is not an address:port like 127.0.0.1:9187"),
            );
            None
        }
    });
    let mut notify_email = Vec::new();
    for (i, a) in r.notify_email.iter().flatten().enumerate() {
        match crate::Address::parse(a) {
            Ok(a) => notify_email.push(a),
            Err(e) => p.add(format!("monitor.notify_email[{i}]"), e.to_string()),
        }
    }
    let notify_from = match crate::Address::parse(
        r.notify_from
            .as_deref()
            .unwrap_or("mailfleet@localhost.localdomain"),
    ) {
        Ok(a) => a,
        Err(e) => {
            p.add("monitor.notify_from", e.to_string());
            crate::Address::parse("mailfleet@localhost.localdomain")
                .unwrap_or_else(|_| unreachable!())
        }
    };
    if let Some(u) = &r.webhook_url
        && !u.starts_with("http://")
    {
        p.add(
            "monitor.webhook_url",
            format!("{u:?}: only http:// URLs are supported (no TLS client yet)"),
        );
    }
    MonitorConfig {
        interval,
        listen,
        notify_email,
        notify_from,
        webhook_url: r.webhook_url.clone(),
        confirm_rounds,
        repeat,
        flap_window,
        flap_changes,
        retention,
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn fleet(
    raw: Vec<RawServer>,
    raw_groups: BTreeMap<String, Vec<String>>,
    base: &Path,
    p: &mut Problems,
) -> Fleet {
    let mut servers = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut endpoints: HashMap<(String, u16), String> = HashMap::new();
    for (i, s) in raw.into_iter().enumerate() {
        let key = format!("server[{i}]");
        if !valid_name(&s.name) {
            p.add(
                format!("{key}.name"),
                format!(
                    "{:?} is not a server name (letters, digits, '-', '_', '.')",
                    s.name
                ),
            );
        } else if let Some(first) = seen.insert(s.name.clone(), i) {
            p.add(
                format!("{key}.name"),
                format!("duplicate server name {:?} (also server[{first}])", s.name),
            );
        }
        let server = server(s, &key, base, p);
        for (proto, port) in server.ports.iter() {
            let owner = format!("{}.{proto}", server.name);
            if let Some(other) = endpoints.insert((server.host.clone(), port), owner.clone()) {
                p.add(
                    format!("{key}.ports.{proto}"),
                    format!("port {port} on {} is already used by {other}", server.host),
                );
            }
        }
        servers.push(server);
    }
    for (i, s) in servers.iter().enumerate() {
        if let Some(m) = &s.replica_of {
            match servers.iter().find(|x| &x.name == m) {
                None => p.add(
                    format!("server[{i}].replica_of"),
                    format!("unknown server {m:?}"),
                ),
                Some(x) if !x.has_role(Role::Directory) || x.ports.ldap.is_none() => p.add(
                    format!("server[{i}].replica_of"),
                    format!("server {m:?} is not a directory server with an ldap port"),
                ),
                Some(x) if x.name == s.name => {
                    p.add(format!("server[{i}].replica_of"), "names the server itself")
                }
                Some(_) => {}
            }
        }
    }
    let groups = groups(&mut servers, raw_groups, p);
    Fleet { servers, groups }
}

fn server(s: RawServer, key: &str, base: &Path, p: &mut Problems) -> Server {
    let label = format!("(server {:?})", s.name);
    let roles: BTreeSet<Role> = s.roles.iter().copied().collect();
    if roles.is_empty() {
        p.add(
            format!("{key}.roles"),
            format!("is empty: give at least one of directory, mta, proxy, mailbox {label}"),
        );
    } else if roles.len() != s.roles.len() {
        p.add(
            format!("{key}.roles"),
            format!("lists a role twice {label}"),
        );
    }
    let host = s.host.trim().to_string();
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains('/') {
        p.add(
            format!("{key}.host"),
            format!("{:?} is not a host name or address {label}", s.host),
        );
    }
    let ports = s.ports.filter_map(|proto, v| match u16::try_from(v) {
        Ok(port) if port > 0 => Some(port),
        _ => {
            p.add(
                format!("{key}.ports.{proto}"),
                format!("{v} is out of range 1-65535 {label}"),
            );
            None
        }
    });
    let needs = [
        (Role::Mta, "smtp", s.ports.smtp.is_some()),
        (Role::Mailbox, "lmtp", s.ports.lmtp.is_some()),
        (Role::Directory, "ldap", s.ports.ldap.is_some()),
    ];
    for (role, proto, has) in needs {
        if roles.contains(&role) && !has {
            p.add(
                format!("{key}.ports.{proto}"),
                format!("missing: a {role} server needs an {proto} port {label}"),
            );
        }
    }
    if roles.contains(&Role::Mailbox) && s.maildir_root.is_none() {
        p.add(
            format!("{key}.maildir_root"),
            format!("missing: a mailbox server needs the root of its Maildirs {label}"),
        );
    }
    let weight = s.weight.unwrap_or(1);
    if !(0..=1000).contains(&weight) {
        p.add(
            format!("{key}.weight"),
            format!("{weight} is out of range 0-1000 {label}"),
        );
    }
    if let Some(g) = &s.group
        && !valid_name(g)
    {
        p.add(
            format!("{key}.group"),
            format!("{g:?} is not a group name {label}"),
        );
    }
    Server {
        name: s.name,
        roles,
        host,
        ports,
        group: s.group,
        weight: weight.clamp(0, 1000) as u32,
        maildir_root: s.maildir_root.map(|r| resolve(base, &r)),
        postfix_dir: s.postfix_dir.map(|r| resolve(base, &r)),
        passwd_file: s.passwd_file.map(|r| resolve(base, &r)),
        pid_file: s.pid_file.map(|f| resolve(base, &f)),
        replica_of: s.replica_of.clone(),
        replica_max_lag: {
            let l = s.replica_max_lag_secs.unwrap_or(60);
            if !(0..=86_400).contains(&l) {
                p.add(
                    format!("{key}.replica_max_lag_secs"),
                    format!("{l} is out of range 0-86400 {label}"),
                );
            }
            std::time::Duration::from_secs(l.clamp(0, 86_400) as u64)
        },
        http_path: match s.http_path {
            Some(path) if path.starts_with('/') && !path.contains(char::is_whitespace) => path,
            Some(path) => {
                p.add(
                    format!("{key}.http_path"),
                    format!("{path:?} is not a path starting with / {label}"),
                );
                "/".into()
            }
            None => "/".into(),
        },
        backup_status: s.backup_status.map(|f| resolve(base, &f)),
        backup_max_age: {
            let h = s.backup_max_age_hours.unwrap_or(26);
            if !(1..=24 * 365).contains(&h) {
                p.add(
                    format!("{key}.backup_max_age_hours"),
                    format!("{h} is out of range 1-8760 {label}"),
                );
            }
            std::time::Duration::from_secs(3600 * h.clamp(1, 24 * 365) as u64)
        },
        probe_account: s
            .probe_account
            .as_deref()
            .and_then(|a| match crate::Address::parse(a) {
                Ok(a) => Some(a),
                Err(e) => {
                    p.add(format!("{key}.probe_account"), format!("{e} {label}"));
                    None
                }
            }),
    }
}

/// Groups come from `[groups]` lists and from each server's `group` key; the two must agree.
fn groups(
    servers: &mut [Server],
    raw: BTreeMap<String, Vec<String>>,
    p: &mut Problems,
) -> BTreeMap<String, Vec<String>> {
    let mut member_of: HashMap<String, String> = HashMap::new();
    for (name, members) in &raw {
        let key = format!("groups.{name}");
        if !valid_name(name) {
            p.add(&key, "is not a group name (letters, digits, '-', '_', '.')");
        }
        if members.is_empty() {
            p.add(&key, "is empty");
        }
        for m in members {
            if !servers.iter().any(|s| &s.name == m) {
                p.add(&key, format!("lists unknown server {m:?}"));
            } else if let Some(other) = member_of.insert(m.clone(), name.clone()) {
                if &other == name {
                    p.add(&key, format!("lists server {m:?} twice"));
                } else {
                    p.add(&key, format!("server {m:?} is already in group {other:?}: a server has one redundancy group"));
                }
            }
        }
    }
    let declared: BTreeSet<String> = raw.keys().cloned().collect();
    let mut groups = raw;
    for (i, s) in servers.iter_mut().enumerate() {
        match (&s.group, member_of.get(&s.name)) {
            (Some(g), Some(listed)) if g != listed => p.add(
                format!("server[{i}].group"),
                format!(
                    "is {g:?} but [groups] puts server {:?} in {listed:?}",
                    s.name
                ),
            ),
            (Some(g), None) => {
                if declared.contains(g) {
                    p.add(
                        format!("server[{i}].group"),
                        format!("is {g:?} but groups.{g} does not list server {:?}", s.name),
                    );
                }
                groups.entry(g.clone()).or_default().push(s.name.clone());
            }
            (None, Some(listed)) => s.group = Some(listed.clone()),
            _ => {}
        }
    }
    groups
}

/// `base/p` without `.` components (an absolute `p` stands alone), for readable messages.
fn resolve(base: &Path, p: &Path) -> PathBuf {
    base.join(p)
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

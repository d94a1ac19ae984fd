//! Validation of the servers and their redundancy groups.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::raw::RawServer;
use super::validate::{Problems, resolve};
use crate::fleet::{Fleet, Role, Server};

/// TLS settings from their raw form (a server's `tls` or `[directory.ldap] tls`).
pub(super) fn tls_settings(
    t: &super::raw::RawTls,
    base: &Path,
    key: &str,
    label: &str,
    p: &mut Problems,
) -> crate::fleet::TlsSettings {
    crate::fleet::TlsSettings {
        starttls: t.starttls.unwrap_or_default(),
        verify: t.verify.unwrap_or(true),
        ca_file: t.ca_file.as_ref().map(|f| resolve(base, f)),
        server_name: match &t.server_name {
            Some(n) if n.is_empty() || n.contains(char::is_whitespace) => {
                p.add(
                    format!("{key}.server_name"),
                    format!("{n:?} is not a host name {label}")
                        .trim_end()
                        .to_string(),
                );
                None
            }
            n => n.clone(),
        },
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub(super) fn fleet(
    raw: Vec<RawServer>,
    raw_groups: BTreeMap<String, Vec<String>>,
    ssh: &super::raw::RawSshDefaults,
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
        let server = server(s, ssh, &key, base, p);
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

fn server(
    s: RawServer,
    ssh: &super::raw::RawSshDefaults,
    key: &str,
    base: &Path,
    p: &mut Problems,
) -> Server {
    let label = format!("(server {:?})", s.name);
    let access = super::validate_access::access(&s, ssh, key, &label, base, p);
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
    let services = super::validate_services::services(s.services, base, key, &label, p);
    let reboot = super::validate_services::argv(s.reboot, &format!("{key}.reboot"), &label, p);
    let update_command = super::validate_services::argv(
        s.update_command,
        &format!("{key}.update_command"),
        &label,
        p,
    );
    let mail_log = mail_logs(
        s.mail_log,
        &access,
        base,
        &format!("{key}.mail_log"),
        &label,
        p,
    );
    Server {
        name: s.name,
        access,
        roles,
        host,
        ports,
        group: s.group,
        canary: s.canary.unwrap_or(false),
        package_root: s.package_root.map(|r| resolve(base, &r)),
        drain: s.drain,
        weight: weight.clamp(0, 1000) as u32,
        maildir_root: s.maildir_root.map(|r| resolve(base, &r)),
        postfix_dir: s.postfix_dir.map(|r| resolve(base, &r)),
        dovecot_config: s.dovecot_config.map(|r| resolve(base, &r)),
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
        tls: tls_settings(&s.tls, base, &format!("{key}.tls"), &label, p),
        mail_log,
        services,
        reboot,
        update_command,
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

/// `mail_log`: paths on the server; relative ones only mean something when it is this machine.
fn mail_logs(
    raw: Option<super::raw::OneOrMore<PathBuf>>,
    access: &mailfleet_remote::Access,
    base: &Path,
    key: &str,
    label: &str,
    p: &mut Problems,
) -> Vec<PathBuf> {
    let logs = raw.map(super::raw::OneOrMore::into_vec).unwrap_or_default();
    let mut out = Vec::with_capacity(logs.len());
    for log in logs {
        let dir = log.parent().map(|d| d.to_string_lossy().into_owned());
        if log.file_name().is_none() {
            p.add(key, format!("{log:?} names no file {label}"));
        } else if dir.is_some_and(|d| d.contains(['*', '?', '['])) {
            p.add(
                key,
                format!("{log:?}: a pattern may only be in the file name {label}"),
            );
        } else if log.is_absolute() {
            out.push(log);
        } else if matches!(access, mailfleet_remote::Access::Local) {
            out.push(resolve(base, &log));
        } else {
            p.add(
                key,
                format!("{log:?} is not an absolute path (it names a file on the server) {label}"),
            );
        }
    }
    out
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

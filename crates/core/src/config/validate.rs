//! Turns the raw file into a typed [`Config`], collecting every problem with the key it concerns.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{
    DirectoryBackend, RawConfig, RawLdap, RawMonitor, RawProbe, RawState, StateBackend,
};
use super::{
    Config, DirectoryConfig, LdapAttributes, LdapConfig, MonitorConfig, ProbeConfig, Problem,
    StateConfig,
};

#[derive(Default)]
pub(super) struct Problems(Vec<Problem>);

impl Problems {
    pub(super) fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    /// Every problem as `key: message` lines, for tests.
    #[cfg(test)]
    pub(super) fn text(&self) -> String {
        self.0
            .iter()
            .map(|p| format!("{}: {}\n", p.key, p.message))
            .collect()
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
    let state = state(&raw.state, &data_dir, &mut p);
    let probe = probe(&raw.probe, base, &mut p);
    let monitor = monitor(&raw.monitor, &mut p);
    let serve = super::serve::serve(&raw.serve, base, &mut p);
    let moves = super::validate_move::moves(&raw.moves, &monitor.notify_email, base, &mut p);
    let upgrade = super::upgrade::upgrade(&raw.upgrade, base, &mut p);
    let mut shift_logs = Vec::new();
    for (i, l) in raw.shift.logs.iter().flatten().enumerate() {
        if l.as_os_str().is_empty() {
            p.add(format!("shift.logs[{i}]"), "is empty");
        } else {
            shift_logs.push(resolve(base, l));
        }
    }
    let backup = super::BackupConfig {
        repository: repository(&raw.backup, base, &data_dir, &mut p),
        timeout: {
            let t = raw.backup.timeout_secs.unwrap_or(30);
            if !(1..=3600).contains(&t) {
                p.add("backup.timeout_secs", format!("{t} is out of range 1-3600"));
            }
            Duration::from_secs(t.clamp(1, 3600) as u64)
        },
        imap_master_user: {
            if raw.backup.imap_master_user.is_some()
                != raw.backup.imap_master_password_file.is_some()
            {
                p.add(
                    "backup.imap_master_user",
                    "and imap_master_password_file go together",
                );
            }
            raw.backup.imap_master_user.clone()
        },
        imap_master_password_file: raw
            .backup
            .imap_master_password_file
            .as_ref()
            .map(|f| resolve(base, f)),
        key_file: match &raw.backup.key_file {
            Some(f) if f.as_os_str().is_empty() => {
                p.add(
                    "backup.key_file",
                    "is empty (leave it out for no encryption)",
                );
                None
            }
            f => f.as_ref().map(|f| resolve(base, f)),
        },
        // Paths on the stores, not here: kept as written, and must be absolute.
        remote_mailfleet: remote_path(
            &raw.backup.remote_mailfleet,
            "backup.remote_mailfleet",
            &mut p,
        ),
        remote_config: remote_path(&raw.backup.remote_config, "backup.remote_config", &mut p),
        run_on_stores: raw.backup.run_on_stores.unwrap_or(true),
        schedule: super::schedule::schedule(&raw.backup.schedule, &mut p),
        pre: command(&raw.backup.pre, "backup.pre", &mut p),
        post: command(&raw.backup.post, "backup.post", &mut p),
        command_timeout: {
            let t = raw.backup.command_timeout_secs.unwrap_or(60);
            if !(1..=3600).contains(&t) {
                p.add(
                    "backup.command_timeout_secs",
                    format!("{t} is out of range 1-3600"),
                );
            }
            Duration::from_secs(t.clamp(1, 3600) as u64)
        },
    };
    if serve.ldap_group.is_some() && !matches!(directory, DirectoryConfig::Ldap(_)) {
        p.add(
            "serve.ldap_group",
            "needs the LDAP directory ([directory] backend = \"ldap\")",
        );
    }
    if serve.parts.contains(&super::ServePart::Backup) && backup.schedule.is_empty() {
        p.add(
            "backup.schedule",
            "is empty, but serve.parts names backup: say when (\"02:30\" UTC, or \"every 6h\")",
        );
    }
    let mut policy = super::policy::validate(&raw.policy, base, &data_dir, &mut p);
    super::validate_access::defaults(&raw.ssh, base, &mut p);
    let fleet = super::validate_fleet::fleet(raw.servers, raw.groups, &raw.ssh, base, &mut p);
    if let Some(name) = &policy.mta {
        match fleet.server(name) {
            Some(s) if s.has_role(crate::Role::Mta) => {
                policy.mta_access = s.access.clone();
                if policy.postfix_config_dir.is_none() {
                    policy.postfix_config_dir = s.postfix_dir.clone();
                }
                // Its live log (a pattern names a rotated set, not a file to follow).
                if policy.postfix_log.is_none() {
                    policy.postfix_log = s.live_logs().next().cloned();
                }
            }
            Some(_) => p.add("policy.mta", format!("server {name:?} is not an mta")),
            None => p.add("policy.mta", format!("unknown server {name:?}")),
        }
    }
    for group in upgrade.min_up.keys() {
        if !fleet.groups.contains_key(group) {
            p.add(
                format!("upgrade.min_up.{group}"),
                format!("no such group ({})", known(fleet.groups.keys())),
            );
        }
    }
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
            backup,
            policy,
            moves,
            upgrade,
            serve,
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
    let tls = super::validate_fleet::tls_settings(&l.tls, base, "directory.ldap.tls", "", p);
    if !tls.verify {
        p.add(
            "directory.ldap.tls.verify",
            "false is not allowed: the directory's certificate is always verified (give its CA in tls.ca_file)",
        );
    }
    LdapConfig {
        url,
        base_dn,
        bind_dn,
        password_file,
        timeout: Duration::from_secs(timeout_secs.clamp(1, 3600) as u64),
        object_classes,
        attributes,
        tls,
    }
}

fn state(s: &RawState, data_dir: &Path, p: &mut Problems) -> StateConfig {
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
        && !(u.starts_with("http://") || u.starts_with("https://"))
    {
        p.add(
            "monitor.webhook_url",
            format!("{u:?}: give an http:// or https:// URL"),
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

/// `base/p` without `.` components (an absolute `p` stands alone), for readable messages.
pub(super) fn resolve(base: &Path, p: &Path) -> PathBuf {
    base.join(p)
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// A path on another machine: absolute, since it is not relative to anything here.
fn remote_path(v: &Option<PathBuf>, key: &str, p: &mut Problems) -> Option<PathBuf> {
    let path = v.as_ref()?;
    if !path.is_absolute() {
        p.add(
            key,
            format!(
                "{:?} is not an absolute path (it names a file on the stores)",
                path
            ),
        );
    }
    Some(path.clone())
}

/// A shell command setting: present means non-blank.
fn command(value: &Option<String>, key: &str, p: &mut Problems) -> Option<String> {
    match value {
        Some(c) if c.trim().is_empty() => {
            p.add(key, "is empty (leave it out to run nothing)");
            None
        }
        c => c.clone(),
    }
}

/// `[backup] repository`: a directory, or `s3://BUCKET/PREFIX` with `[backup.s3]`.
fn repository(
    b: &super::raw::RawBackup,
    base: &Path,
    data_dir: &Path,
    p: &mut Problems,
) -> super::RepoLocation {
    use super::RepoLocation;
    let dir = |path| RepoLocation::Dir { path };
    let Some(r) = &b.repository else {
        return dir(data_dir.join("backup"));
    };
    if r.trim().is_empty() {
        p.add("backup.repository", "is empty");
        return dir(data_dir.join("backup"));
    }
    let Some(rest) = r.strip_prefix("s3://") else {
        return dir(resolve(base, Path::new(r)));
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.');
    if !valid_bucket {
        p.add(
            "backup.repository",
            format!("{bucket:?} is not an S3 bucket name (3-63 of a-z 0-9 . -)"),
        );
    }
    let s3 = &b.s3;
    if let Some(e) = &s3.endpoint
        && !e.starts_with("http://")
        && !e.starts_with("https://")
    {
        p.add(
            "backup.s3.endpoint",
            format!("{e:?} is not an http:// or https:// URL"),
        );
    }
    if s3.access_key_id.is_some() != s3.secret_access_key_file.is_some() {
        p.add(
            "backup.s3",
            "access_key_id and secret_access_key_file go together",
        );
    }
    RepoLocation::S3(super::S3Location {
        bucket: bucket.to_string(),
        prefix: prefix.trim_matches('/').to_string(),
        endpoint: s3.endpoint.clone(),
        region: s3.region.clone().unwrap_or_else(|| "us-east-1".into()),
        access_key_id: s3.access_key_id.clone(),
        secret_access_key_file: s3.secret_access_key_file.as_ref().map(|f| resolve(base, f)),
    })
}

/// "groups: a, b" or "there are no groups", for errors naming an unknown one.
fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let all: Vec<&str> = names.map(String::as_str).collect();
    if all.is_empty() {
        "there are no groups".into()
    } else {
        format!("groups: {}", all.join(", "))
    }
}

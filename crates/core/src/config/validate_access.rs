//! Validation of how each server is reached: `access = "local"`, or `ssh = "user@host[:port]"`
//! with its key, `known_hosts` and jump hosts (each defaulting to `[ssh]`).

use std::path::Path;

use mailfleet_remote::{Access, SshTarget};

use super::raw::{RawServer, RawSshDefaults};
use super::validate::{Problems, resolve};

pub(super) fn access(
    s: &RawServer,
    defaults: &RawSshDefaults,
    key: &str,
    label: &str,
    base: &Path,
    p: &mut Problems,
) -> Access {
    let ssh_only = [
        ("identity_file", s.identity_file.is_some()),
        ("known_hosts", s.known_hosts.is_some()),
        ("jump", s.jump.is_some()),
    ];
    let spec = match (s.access.as_deref(), s.ssh.as_deref()) {
        (None | Some("local"), None) => {
            for (k, set) in ssh_only {
                if set {
                    p.add(
                        format!("{key}.{k}"),
                        format!("is for servers reached by ssh; this one has no ssh key {label}"),
                    );
                }
            }
            return Access::Local;
        }
        (Some("local"), Some(_)) => {
            p.add(
                format!("{key}.access"),
                format!("is \"local\" but ssh is set too: give one {label}"),
            );
            return Access::Local;
        }
        (Some("ssh"), None) => {
            p.add(
                format!("{key}.ssh"),
                format!("missing: access = \"ssh\" needs ssh = \"user@host[:port]\" {label}"),
            );
            return Access::Local;
        }
        (None | Some("ssh"), Some(spec)) => spec,
        (Some(other), _) => {
            p.add(
                format!("{key}.access"),
                format!("{other:?} is not \"local\" or \"ssh\" {label}"),
            );
            return Access::Local;
        }
    };
    let mut target = match SshTarget::parse(spec) {
        Ok(t) => t,
        Err(e) => {
            p.add(format!("{key}.ssh"), format!("{e} {label}"));
            return Access::Local;
        }
    };
    let file = |own: &Option<std::path::PathBuf>,
                fallback: &Option<std::path::PathBuf>,
                name: &str,
                p: &mut Problems| {
        match (own, fallback) {
            (Some(f), _) => {
                let path = resolve(base, f);
                if let Err(e) = std::fs::metadata(&path) {
                    p.add(
                        format!("{key}.{name}"),
                        format!("{}: {e} {label}", path.display()),
                    );
                }
                Some(path)
            }
            // Checked once, by `defaults`.
            (None, Some(f)) => Some(resolve(base, f)),
            (None, None) => None,
        }
    };
    target.identity_file = file(
        &s.identity_file,
        &defaults.identity_file,
        "identity_file",
        p,
    );
    target.known_hosts = file(&s.known_hosts, &defaults.known_hosts, "known_hosts", p);
    target.jump = s
        .jump
        .clone()
        .or_else(|| defaults.jump.clone())
        .unwrap_or_default();
    for (i, j) in s.jump.iter().flatten().enumerate() {
        if let Err(e) = SshTarget::parse(j) {
            p.add(format!("{key}.jump[{i}]"), format!("{e} {label}"));
        }
    }
    Access::Ssh(target)
}

/// Checks the `[ssh]` defaults once (each server using them would repeat the message).
pub(super) fn defaults(d: &RawSshDefaults, base: &Path, p: &mut Problems) {
    for (name, f) in [
        ("identity_file", &d.identity_file),
        ("known_hosts", &d.known_hosts),
    ] {
        if let Some(f) = f {
            let path = resolve(base, f);
            if let Err(e) = std::fs::metadata(&path) {
                p.add(format!("ssh.{name}"), format!("{}: {e}", path.display()));
            }
        }
    }
    for (i, j) in d.jump.iter().flatten().enumerate() {
        if let Err(e) = SshTarget::parse(j) {
            p.add(format!("ssh.jump[{i}]"), e);
        }
    }
}

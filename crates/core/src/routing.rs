//! Publishes where each mailbox lives to the servers that route by it: Postfix maps on MTAs
//! (`mailfleet-transport`, `-mailboxes`, `-domains`, hash tables) and a Dovecot passwd-file
//! per mailbox store. Files are rewritten only when their content changes, atomically.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Account;
use crate::fleet::{Fleet, Role, Server};

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `postmap` or `postfix reload` failed.
    #[error("{command}: {message}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status and error output.
        message: String,
    },
}

/// What publishing changed.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Published {
    /// Files rewritten.
    pub changed: Vec<PathBuf>,
    /// MTAs whose Postfix was told to reload.
    pub reloaded: Vec<String>,
    /// Accounts on servers the config does not know or that have no LMTP port.
    pub unroutable: Vec<String>,
}

/// Writes every map and user file the fleet's servers are configured for.
pub fn publish(fleet: &Fleet, accounts: &[Account]) -> Result<Published, RoutingError> {
    let mut out = Published::default();
    let mut transport = String::new();
    let mut mailboxes = String::new();
    let mut domains = BTreeSet::new();
    for a in accounts {
        let Some(lmtp) = fleet.server(&a.server).and_then(lmtp_target) else {
            out.unroutable.push(a.address.to_string());
            continue;
        };
        let _ = writeln!(transport, "{} {lmtp}", a.address);
        let _ = writeln!(mailboxes, "{} OK", a.address);
        domains.insert(a.address.domain().to_string());
    }
    let domains: String = domains.iter().map(|d| format!("{d} OK\n")).collect();
    for mta in fleet.with_role(Role::Mta) {
        let Some(dir) = &mta.postfix_dir else {
            continue;
        };
        let mut changed = false;
        for (name, content) in [
            ("mailfleet-transport", &transport),
            ("mailfleet-mailboxes", &mailboxes),
            ("mailfleet-domains", &domains),
        ] {
            let path = dir.join(name);
            if write_if_changed(&path, content)? {
                run(Command::new("postmap")
                    .arg("-c")
                    .arg(dir)
                    .arg(format!("hash:{}", path.display())))?;
                out.changed.push(path);
                changed = true;
            }
        }
        if changed && postfix_running(dir) {
            run(Command::new("postfix").arg("-c").arg(dir).arg("reload"))?;
            out.reloaded.push(mta.name.clone());
        }
    }
    for server in &fleet.servers {
        let Some(path) = &server.passwd_file else {
            continue;
        };
        // A store authenticates its own accounts; an MTA (SMTP AUTH) every account.
        let content = if server.has_role(Role::Mailbox) {
            passwd_file(accounts.iter().filter(|a| a.server == server.name))
        } else {
            passwd_file(accounts.iter())
        };
        if write_if_changed(path, &content)? {
            out.changed.push(path.clone());
        }
    }
    Ok(out)
}

/// The Postfix transport (`lmtp:inet:host:port`) delivering into a store.
fn lmtp_target(s: &Server) -> Option<String> {
    let port = s.ports.lmtp?;
    let host = if s.host.contains(':') {
        format!("[{}]", s.host)
    } else {
        s.host.clone()
    };
    Some(format!("lmtp:inet:{host}:{port}"))
}

/// Dovecot passwd-file lines for these accounts; uid, gid and home come from the store's
/// `default_fields`. An account without a hash gets one no password can match.
fn passwd_file<'a>(accounts: impl Iterator<Item = &'a Account>) -> String {
    accounts
        .map(|a| {
            let hash = a.password_hash.as_deref().unwrap_or("{CRYPT}!");
            format!("{}:{hash}::::::\n", a.address)
        })
        .collect()
}

fn postfix_running(dir: &Path) -> bool {
    Command::new("postfix")
        .arg("-c")
        .arg(dir)
        .arg("status")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(cmd: &mut Command) -> Result<(), RoutingError> {
    let command = format!("{cmd:?}").replace('"', "");
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| RoutingError::Command {
            command: command.clone(),
            message: e.to_string(),
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(RoutingError::Command {
        command,
        message: format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })
}

/// Replaces a file by rename if its content differs; keeps an existing file's mode and owner,
/// since Dovecot's auth process must go on reading it.
pub fn write_if_changed(path: &Path, content: &str) -> Result<bool, RoutingError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let io = |source| RoutingError::Io {
        path: path.to_path_buf(),
        source,
    };
    let old = std::fs::metadata(path).ok();
    if old.is_some() && std::fs::read(path).map_err(io)? == content.as_bytes() {
        return Ok(false);
    }
    let tmp = path.with_extension("mailfleet-tmp");
    std::fs::write(&tmp, content).map_err(io)?;
    if let Some(m) = &old {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(m.mode())).map_err(io)?;
        // Only root can give a file away; others keep their own ownership.
        let _ = std::os::unix::fs::chown(&tmp, Some(m.uid()), Some(m.gid()));
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(true)
}

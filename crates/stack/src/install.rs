//! Checks for the daemons' programs and installs their Debian packages on request.

use std::path::Path;
use std::process::Command;

use crate::StackError;

/// Program, and the Debian package that provides it.
const PROGRAMS: &[(&str, &str)] = &[
    ("postfix", "postfix"),
    ("postmap", "postfix"),
    ("dovecot", "dovecot-imapd dovecot-pop3d dovecot-lmtpd"),
    ("doveadm", "dovecot-imapd dovecot-pop3d dovecot-lmtpd"),
    ("slapd", "slapd"),
    ("slapadd", "slapd"),
    ("ldapsearch", "ldap-utils"),
    ("redis-server", "redis-server"),
    ("sshd", "openssh-server"),
    ("ssh", "openssh-client"),
];

/// Every package the stack needs.
pub const PACKAGES: &str = "postfix dovecot-imapd dovecot-pop3d dovecot-lmtpd slapd ldap-utils redis-server openssh-server openssh-client";

/// Finds a program on `PATH` or in the sbin directories (root's PATH may lack them).
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/lib/postfix/sbin"].map(Into::into))
        .map(|d| d.join(program))
        .find(|p| Path::new(p).is_file())
}

/// Errors naming the missing programs and the packages to install; also checks that
/// Dovecot's LMTP and POP3 parts are there, which are separate packages.
pub fn check() -> Result<(), StackError> {
    let mut missing: Vec<&str> = Vec::new();
    let mut packages: Vec<&str> = Vec::new();
    for (program, package) in PROGRAMS {
        if which(program).is_none() {
            missing.push(program);
            packages.extend(package.split(' '));
        }
    }
    for (file, package) in [
        ("/usr/lib/dovecot/lmtp", "dovecot-lmtpd"),
        ("/usr/lib/dovecot/pop3", "dovecot-pop3d"),
        ("/usr/lib/dovecot/imap", "dovecot-imapd"),
    ] {
        if !Path::new(file).exists() {
            missing.push(file);
            packages.push(package);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    packages.sort();
    packages.dedup();
    Err(StackError::Missing {
        programs: missing.join(", "),
        packages: packages.join(" "),
    })
}

/// Installs the packages with apt-get, preseeding debconf so nothing prompts.
pub fn install() -> Result<(), StackError> {
    let script = format!(
        "set -e
echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 {PACKAGES}"
    );
    let status = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .stdin(std::process::Stdio::null())
        .status()
        .map_err(|e| StackError::Command {
            command: "apt-get install".into(),
            message: e.to_string(),
        })?;
    if !status.success() {
        return Err(StackError::Command {
            command: format!("apt-get install {PACKAGES}"),
            message: format!("{status} (installing needs root)"),
        });
    }
    check()
}

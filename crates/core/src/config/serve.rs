//! `[serve]`: which parts `mailfleet serve` runs in its one process.

use serde::{Deserialize, Serialize};

use super::validate::Problems;

/// A part of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServePart {
    /// The monitor's probe rounds, alarms and `/metrics`.
    Monitor,
    /// The policy server, milter, release loop and log follower.
    Policy,
    /// The web dashboard and its JSON API.
    Web,
    /// Backups at the times of `[backup] schedule`.
    Backup,
    /// Moves and upgrades run by the daemon, started from the dashboard or handed over by the
    /// command line through a socket in the data directory.
    Runs,
}

impl ServePart {
    /// Its name in the config and the log.
    pub fn as_str(self) -> &'static str {
        match self {
            ServePart::Monitor => "monitor",
            ServePart::Policy => "policy",
            ServePart::Web => "web",
            ServePart::Backup => "backup",
            ServePart::Runs => "runs",
        }
    }
}

/// An operator of the web dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Operator {
    /// The login name.
    pub name: String,
    /// The Argon2 hash of the password (PHC string); never shown or logged.
    #[serde(skip)]
    pub password_hash: String,
}

/// How `mailfleet serve` runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServeConfig {
    /// The parts it runs (each once, in this order).
    pub parts: Vec<ServePart>,
    /// Where the dashboard listens (loopback unless TLS is set up).
    pub listen: std::net::SocketAddr,
    /// Who may log in.
    pub operators: Vec<Operator>,
    /// How long a session lasts after its login.
    pub session_lifetime: std::time::Duration,
    /// The dashboard's certificate and key: HTTPS, and needed to listen off loopback.
    pub tls: Option<ServeTls>,
    /// The directory group whose members log in with their account's own password (a bind
    /// as their entry), besides `operators`.
    pub ldap_group: Option<String>,
}

/// `[serve] tls`: the dashboard's certificate chain and private key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServeTls {
    /// The certificate, then any intermediates.
    pub cert_file: std::path::PathBuf,
    /// Its private key (readable by the daemon's user only).
    pub key_file: std::path::PathBuf,
}

/// `[serve]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServe {
    pub(crate) parts: Option<Vec<ServePart>>,
    pub(crate) listen: Option<String>,
    pub(crate) operators: Option<Vec<RawOperator>>,
    pub(crate) session_lifetime: Option<String>,
    pub(crate) tls: Option<RawServeTls>,
    pub(crate) ldap_group: Option<String>,
}

/// `[serve] tls` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServeTls {
    pub(crate) cert_file: std::path::PathBuf,
    pub(crate) key_file: std::path::PathBuf,
}

/// One `[[serve.operators]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOperator {
    pub(crate) name: String,
    pub(crate) password_hash: String,
}

/// Checks `[serve]`: the parts named once each (default: the monitor and the policy server),
/// the dashboard on loopback unless it has TLS, whose certificate and key must load, each
/// operator's hash an Argon2 PHC string.
pub(crate) fn serve(r: &RawServe, base: &std::path::Path, p: &mut Problems) -> ServeConfig {
    let tls = r.tls.as_ref().map(|t| ServeTls {
        cert_file: super::validate::resolve(base, &t.cert_file),
        key_file: super::validate::resolve(base, &t.key_file),
    });
    // Loaded now so a SIGHUP with a broken certificate is refused, not served as plain HTTP.
    if let Some(t) = &tls
        && let Err(e) = crate::tls::server(&t.cert_file, &t.key_file)
    {
        p.add("serve.tls", e.to_string());
    }
    let parts = r
        .parts
        .clone()
        .unwrap_or_else(|| vec![ServePart::Monitor, ServePart::Policy]);
    let mut seen = std::collections::BTreeSet::new();
    for (i, part) in parts.iter().enumerate() {
        if !seen.insert(*part) {
            p.add(
                format!("serve.parts[{i}]"),
                format!("{:?} is named twice", part.as_str()),
            );
        }
    }
    if parts.is_empty() {
        p.add(
            "serve.parts",
            "names no part (monitor, policy, web, backup, runs)",
        );
    }
    let listen = match r
        .listen
        .as_deref()
        .unwrap_or("127.0.0.1:8480")
        .parse::<std::net::SocketAddr>()
    {
        Ok(a) if a.ip().is_loopback() || tls.is_some() => a,
        Ok(a) => {
            // Without TLS, passwords and cookies stay on this machine.
            p.add(
                "serve.listen",
                format!("{a} is not a loopback address: set [serve] tls (cert_file, key_file) to listen there, or reach the dashboard through an SSH tunnel"),
            );
            a
        }
        Err(e) => {
            p.add("serve.listen", format!("not an address and port: {e}"));
            std::net::SocketAddr::from(([127, 0, 0, 1], 8480))
        }
    };
    let mut operators = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for (i, o) in r.operators.iter().flatten().enumerate() {
        let key = format!("serve.operators[{i}]");
        if o.name.trim().is_empty() || o.name.contains(char::is_whitespace) {
            p.add(
                format!("{key}.name"),
                format!("{:?} is not a login name", o.name),
            );
        } else if !names.insert(o.name.clone()) {
            p.add(
                format!("{key}.name"),
                format!("{:?} is named twice", o.name),
            );
        }
        match argon2::PasswordHash::new(&o.password_hash) {
            Ok(h) if h.algorithm.as_str().starts_with("argon2") => {}
            // The hash itself is never repeated in a message.
            _ => p.add(
                format!("{key}.password_hash"),
                "is not an Argon2 hash (make one with `mailfleet serve hash-password`)",
            ),
        }
        operators.push(Operator {
            name: o.name.clone(),
            password_hash: o.password_hash.clone(),
        });
    }
    let session_lifetime = match r.session_lifetime.as_deref() {
        None => std::time::Duration::from_secs(8 * 3600),
        Some(t) => match super::parse_duration(t) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                p.add("serve.session_lifetime", "must be longer than 0");
                std::time::Duration::from_secs(8 * 3600)
            }
            Err(e) => {
                p.add("serve.session_lifetime", e);
                std::time::Duration::from_secs(8 * 3600)
            }
        },
    };
    ServeConfig {
        parts,
        listen,
        operators,
        session_lifetime,
        tls,
        ldap_group: match r.ldap_group.as_deref().map(str::trim) {
            Some("") => {
                p.add(
                    "serve.ldap_group",
                    "is empty (leave it out for operators only)",
                );
                None
            }
            Some(g) if !g.contains('=') => {
                p.add("serve.ldap_group", format!("{g:?} is not a DN"));
                None
            }
            g => g.map(String::from),
        },
    }
}

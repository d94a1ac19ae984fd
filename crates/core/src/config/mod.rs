//! `mailfleet.toml`: where it is found, how it is parsed, and the typed config it becomes.

mod error;
pub mod policy;
mod raw;
mod schedule;
mod serve;
mod upgrade;
mod validate;
mod validate_access;
mod validate_fleet;
mod validate_move;
mod validate_services;

pub use schedule::{BackupTime, next_due};
pub use serve::{ServeConfig, ServePart, ServeTls};
pub use upgrade::{Drain, UpgradeConfig, Window};
pub use validate_move::parse_duration;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub use error::{ConfigError, Problem};

use crate::fleet::Fleet;

/// The environment variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "MAILFLEET_CONFIG";
/// The config file used when neither `--config` nor `$MAILFLEET_CONFIG` is given.
pub const DEFAULT_CONFIG: &str = "mailfleet.toml";
/// A commented example config, written by `mailfleet config init`.
pub const EXAMPLE: &str = include_str!("../../../../examples/mailfleet.toml");

/// A loaded and validated config.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// The file it was read from.
    pub source: PathBuf,
    /// Where mailfleet keeps its own files.
    pub data_dir: PathBuf,
    /// The account directory.
    pub directory: DirectoryConfig,
    /// Where counters shared between MTAs live.
    pub state: StateConfig,
    /// The servers.
    pub fleet: Fleet,
    /// How probes run.
    pub probe: ProbeConfig,
    /// How `mailfleet monitor` runs and notifies.
    pub monitor: MonitorConfig,
    /// Mail logs the shift check reads for new errors.
    pub shift_logs: Vec<PathBuf>,
    /// Where and how backups are written.
    pub backup: BackupConfig,
    /// Outbound abuse control: quotas, blocks (`[policy]`).
    pub policy: policy::PolicyConfig,
    /// How mailbox moves run (`[move]`).
    pub moves: MoveConfig,
    /// How rolling upgrades are ordered and paced (`[upgrade]`).
    pub upgrade: UpgradeConfig,
    /// Which parts `mailfleet serve` runs (`[serve]`).
    pub serve: ServeConfig,
    /// The `[directory.ldap]` section, when present, whichever backend is in use: the
    /// LDAP probe binds with it.
    pub ldap: Option<LdapConfig>,
}

/// Where the backup repository lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RepoLocation {
    /// A directory (local, or a mount).
    Dir {
        /// The directory.
        path: PathBuf,
    },
    /// An S3-compatible bucket (`s3://BUCKET/PREFIX`).
    S3(S3Location),
}

impl std::fmt::Display for RepoLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RepoLocation::Dir { path } => write!(f, "{}", path.display()),
            RepoLocation::S3(s) => write!(f, "s3://{}/{}", s.bucket, s.prefix),
        }
    }
}

/// An S3-compatible bucket and how to reach it (`[backup.s3]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// The key prefix inside it (may be empty).
    pub prefix: String,
    /// The endpoint URL for non-AWS servers (`http://127.0.0.1:9000`); AWS when unset.
    pub endpoint: Option<String>,
    /// The region (`us-east-1` unless set).
    pub region: String,
    /// The access key id.
    pub access_key_id: Option<String>,
    /// A file holding the secret access key (first line).
    pub secret_access_key_file: Option<PathBuf>,
}

/// Backup settings (`[backup]`).
#[derive(Debug, Clone, Serialize)]
pub struct BackupConfig {
    /// The repository (`DATA_DIR/backup` unless set).
    pub repository: RepoLocation,
    /// Deadline of every single operation on the repository: a target that takes longer is
    /// treated as hung and the run is aborted.
    pub timeout: Duration,
    /// A shell command run before a backup (mount the target); if it fails the run is
    /// skipped with an alarm.
    pub pre: Option<String>,
    /// A shell command run after a backup, whatever its result (unmount the target).
    pub post: Option<String>,
    /// Deadline of `pre` and `post`.
    pub command_timeout: Duration,
    /// The Dovecot master user `restore --into-store` logs in as (`ACCOUNT*MASTER`).
    pub imap_master_user: Option<String>,
    /// The file holding its password (first line).
    pub imap_master_password_file: Option<PathBuf>,
    /// The key file of an encrypted repository (`mailfleet backup keygen FILE` makes one);
    /// unset: the repository is not encrypted.
    pub key_file: Option<PathBuf>,
    /// The mailfleet binary on the stores, run there through each SSH-reached store's access
    /// to back up its Maildirs (unset: this binary's own path, as a package installs it).
    pub remote_mailfleet: Option<PathBuf>,
    /// The config that binary reads on the stores (unset: this config's own path).
    pub remote_config: Option<PathBuf>,
    /// Whether `backup run` backs up each SSH-reached store on the store itself (default);
    /// false reads every store's Maildirs from this machine (one run, one snapshot).
    pub run_on_stores: bool,
    /// When `mailfleet serve` backs up by itself (its `backup` part).
    pub schedule: Vec<BackupTime>,
}

/// Mailbox move settings.
#[derive(Debug, Clone, Serialize)]
pub struct MoveConfig {
    /// Copy passes run before the lock until one is this short: the lock lasts about as long.
    pub lock_budget: Duration,
    /// Accounts moved at once.
    pub parallel: usize,
    /// Copy passes before the lock, at most.
    pub max_passes: usize,
    /// A copy pass before the lock waits while the source or the target has a higher
    /// 1-minute load average per CPU (unset: never waits).
    pub max_load: Option<f64>,
    /// Share of a target's filesystem (percent) that must stay free after a move.
    pub keep_free_pct: u8,
    /// A batch stops starting moves once more than this share of it failed.
    pub max_failed_share: f64,
    /// How long the old copy of a moved mailbox is kept (read-only) before `move purge`
    /// deletes it.
    pub keep_old_copy: Duration,
    /// Who gets a summary when a batch ends (default: `[monitor] notify_email`).
    pub notify_email: Vec<crate::Address>,
    /// A template mailed to each user before their move: `{address}`, `{when}` and
    /// `{lock}` are filled in.
    pub user_notice: Option<PathBuf>,
}

/// Monitor settings.
#[derive(Debug, Clone, Serialize)]
pub struct MonitorConfig {
    /// Time between rounds.
    pub interval: Duration,
    /// Where to serve `/metrics`, if anywhere.
    pub listen: Option<std::net::SocketAddr>,
    /// Who gets alarm mail (sent through the fleet's first MTA).
    pub notify_email: Vec<crate::Address>,
    /// The sender of alarm mail.
    pub notify_from: crate::Address,
    /// An `http://` URL that gets each notification as JSON.
    pub webhook_url: Option<String>,
    /// Rounds a new state must hold before it counts.
    pub confirm_rounds: u32,
    /// Re-notify a lasting problem this often.
    pub repeat: Duration,
    /// Rounds looked at for flapping.
    pub flap_window: usize,
    /// State changes within the window that make a check flapping.
    pub flap_changes: usize,
    /// How long samples are kept in the history.
    pub retention: Duration,
}

/// Probe settings.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeConfig {
    /// File holding the probe accounts' password (first line).
    pub password_file: Option<PathBuf>,
    /// Deadline of one whole check.
    pub timeout: Duration,
    /// A check slower than this is WARNING.
    pub warning: Duration,
    /// A check slower than this is CRITICAL.
    pub critical: Duration,
    /// A resource (disk, inodes, memory, swap, CPU, disk I/O) used above this percentage is
    /// WARNING (best practice: 75).
    pub resource_warning_pct: u8,
    /// ... and above this, CRITICAL.
    pub resource_critical_pct: u8,
    /// A mail queue longer than this is WARNING.
    pub queue_warning: u64,
    /// ... and longer than this, CRITICAL.
    pub queue_critical: u64,
}

/// Which account directory to use.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum DirectoryConfig {
    /// A SQLite file.
    Embedded {
        /// The database file.
        path: PathBuf,
    },
    /// An LDAP server.
    Ldap(Box<LdapConfig>),
}

/// How to reach and read an LDAP account directory.
#[derive(Debug, Clone, Serialize)]
pub struct LdapConfig {
    /// `ldap://host:port` or `ldaps://host:port`.
    pub url: String,
    /// Where accounts live (searched with subtree scope, new ones added directly below).
    pub base_dn: String,
    /// Who mailfleet binds as.
    pub bind_dn: String,
    /// File holding the bind password (its first line).
    pub password_file: PathBuf,
    /// Deadline for connecting and for each operation.
    pub timeout: Duration,
    /// Object classes of entries mailfleet adds.
    pub object_classes: Vec<String>,
    /// Attribute names.
    pub attributes: LdapAttributes,
    /// TLS: `ldaps://` from the first byte, StartTLS on `ldap://` (as `starttls` says), the
    /// certificate verified against the system's CAs and `ca_file`.
    pub tls: crate::fleet::TlsSettings,
}

/// The LDAP attribute holding each account field (a Zimbra directory uses other names).
#[derive(Debug, Clone, Serialize)]
pub struct LdapAttributes {
    /// The address (default `mail`).
    pub address: String,
    /// The mailbox server (default `mailHost`; Zimbra: `zimbraMailHost`).
    pub mailbox_server: String,
    /// The password hash (default `userPassword`).
    pub password_hash: String,
    /// Status flags `locked`, `send-blocked` (default `mailfleetStatus`).
    pub status: String,
    /// Why sending is blocked (default `mailfleetBlockReason`).
    pub block_reason: String,
    /// Since when sending is blocked (default `mailfleetBlockedAt`).
    pub blocked_at: String,
}

/// Where counters shared between MTAs live.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum StateConfig {
    /// A file under the data directory: right for a single MTA.
    Embedded {
        /// The state file.
        path: PathBuf,
    },
    /// A Redis server shared by several MTAs.
    Redis {
        /// `redis://host:port/db`.
        url: String,
    },
}

impl Config {
    /// The config path: `--config`, else `$MAILFLEET_CONFIG`, else `./mailfleet.toml`.
    pub fn locate(flag: Option<&Path>) -> PathBuf {
        if let Some(p) = flag {
            return p.to_path_buf();
        }
        match std::env::var_os(CONFIG_ENV) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => PathBuf::from(DEFAULT_CONFIG),
        }
    }

    /// Reads and validates the config at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ConfigError::Missing {
                    path: path.to_path_buf(),
                }
            } else {
                ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        Self::parse(&text, path)
    }

    /// Validates config text; relative paths in it are taken from `path`'s directory.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw = parse_raw(text, path)?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let base = std::path::absolute(&base).unwrap_or(base);
        validate::validate(raw, &base, path.to_path_buf()).map_err(|problems| {
            ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            }
        })
    }
}

fn parse_raw(text: &str, path: &Path) -> Result<raw::RawConfig, ConfigError> {
    let parse_error = |span: Option<std::ops::Range<usize>>, key: String, message: &str| {
        // Counted on bytes: a span may end inside a multi-byte character.
        let line = span.map_or(1, |s| {
            let end = s.start.min(text.len());
            text.as_bytes()[..end]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1
        });
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            key,
            message: one_line(message),
        }
    };
    let de = toml::de::Deserializer::parse(text)
        .map_err(|e| parse_error(e.span(), String::new(), e.message()))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = match e.path().to_string() {
            p if p == "." => String::new(),
            p => format!("{p}: "),
        };
        parse_error(e.inner().span(), key, e.inner().message())
    })
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_parses_with_paths_from_its_directory() {
        let c = Config::parse(EXAMPLE, Path::new("/etc/mailfleet/mailfleet.toml")).unwrap();
        assert_eq!(c.data_dir, Path::new("/etc/mailfleet/mailfleet-data"));
        assert_eq!(c.fleet.servers.len(), 6);
        assert_eq!(
            c.fleet.server("ldap2").unwrap().replica_of.as_deref(),
            Some("ldap1")
        );
        let store1 = c.fleet.server("store1").unwrap();
        assert_eq!(store1.group.as_deref(), Some("stores"));
        assert_eq!(store1.ports.lmtp, Some(24));
        assert_eq!(c.fleet.groups["mta"], ["mx1", "mx2"]);
        assert!(matches!(c.directory, DirectoryConfig::Embedded { .. }));
    }

    #[test]
    fn empty_file_is_a_valid_empty_fleet() {
        let c = Config::parse("", Path::new("mailfleet.toml")).unwrap();
        assert!(c.fleet.servers.is_empty());
        assert!(matches!(c.state, StateConfig::Embedded { .. }));
    }

    #[test]
    fn every_problem_is_reported_one_per_line() {
        let text = "[[server]]\nname = \"a\"\nroles = []\nhost = \"\"\nports = { smtp = 0 }\n";
        let err = Config::parse(text, Path::new("f.toml"))
            .unwrap_err()
            .to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 3, "{err}");
        assert!(
            lines.iter().all(|l| l.starts_with("f.toml: server[0].")),
            "{err}"
        );
    }

    #[test]
    fn binary_junk_is_an_error_not_a_panic() {
        let junk = "\u{0}\u{1}[[[ \u{feff}é\n=\"";
        assert!(Config::parse(junk, Path::new("f.toml")).is_err());
    }
}

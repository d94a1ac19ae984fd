//! The file's shape as serde reads it; [`super::validate`] turns it into typed config.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::fleet::{Ports, Role};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) data_dir: Option<PathBuf>,
    #[serde(default)]
    pub(crate) directory: RawDirectory,
    #[serde(default)]
    pub(crate) state: RawState,
    #[serde(default, rename = "server")]
    pub(crate) servers: Vec<RawServer>,
    #[serde(default)]
    pub(crate) groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub(crate) probe: RawProbe,
    #[serde(default)]
    pub(crate) monitor: RawMonitor,
    #[serde(default)]
    pub(crate) shift: RawShift,
    #[serde(default)]
    pub(crate) backup: RawBackup,
    #[serde(default)]
    pub(crate) policy: super::policy::RawPolicy,
    #[serde(default)]
    pub(crate) ssh: RawSshDefaults,
    #[serde(default, rename = "move")]
    pub(crate) moves: RawMove,
    #[serde(default)]
    pub(crate) upgrade: super::upgrade::RawUpgrade,
    #[serde(default)]
    pub(crate) serve: super::serve::RawServe,
}

/// `[move]`: how mailbox moves run.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMove {
    pub(crate) lock_budget: Option<String>,
    pub(crate) parallel: Option<i64>,
    pub(crate) max_passes: Option<i64>,
    pub(crate) max_load: Option<f64>,
    pub(crate) keep_free_pct: Option<i64>,
    pub(crate) max_failed_share: Option<f64>,
    pub(crate) keep_old_copy: Option<String>,
    pub(crate) notify_email: Option<Vec<String>>,
    pub(crate) user_notice: Option<PathBuf>,
}

/// `[ssh]`: what every server reached by SSH uses unless it says otherwise.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSshDefaults {
    pub(crate) identity_file: Option<PathBuf>,
    pub(crate) known_hosts: Option<PathBuf>,
    pub(crate) jump: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawS3 {
    pub(crate) endpoint: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) access_key_id: Option<String>,
    pub(crate) secret_access_key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBackup {
    pub(crate) repository: Option<String>,
    pub(crate) timeout_secs: Option<i64>,
    #[serde(default)]
    pub(crate) s3: RawS3,
    pub(crate) pre: Option<String>,
    pub(crate) post: Option<String>,
    pub(crate) imap_master_user: Option<String>,
    pub(crate) imap_master_password_file: Option<PathBuf>,
    pub(crate) key_file: Option<PathBuf>,
    pub(crate) command_timeout_secs: Option<i64>,
    pub(crate) remote_mailfleet: Option<PathBuf>,
    pub(crate) remote_config: Option<PathBuf>,
    pub(crate) run_on_stores: Option<bool>,
    pub(crate) schedule: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawShift {
    pub(crate) logs: Option<Vec<PathBuf>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMonitor {
    pub(crate) interval_secs: Option<i64>,
    pub(crate) listen: Option<String>,
    pub(crate) notify_email: Option<Vec<String>>,
    pub(crate) notify_from: Option<String>,
    pub(crate) webhook_url: Option<String>,
    pub(crate) confirm_rounds: Option<i64>,
    pub(crate) repeat_mins: Option<i64>,
    pub(crate) flap_window: Option<i64>,
    pub(crate) flap_changes: Option<i64>,
    pub(crate) retention_days: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProbe {
    pub(crate) password_file: Option<PathBuf>,
    pub(crate) timeout_secs: Option<i64>,
    pub(crate) warning_ms: Option<i64>,
    pub(crate) critical_ms: Option<i64>,
    pub(crate) resource_warning_pct: Option<i64>,
    pub(crate) resource_critical_pct: Option<i64>,
    pub(crate) queue_warning: Option<i64>,
    pub(crate) queue_critical: Option<i64>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum DirectoryBackend {
    #[default]
    Embedded,
    Ldap,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDirectory {
    #[serde(default)]
    pub(crate) backend: DirectoryBackend,
    pub(crate) path: Option<PathBuf>,
    pub(crate) ldap: Option<RawLdap>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLdap {
    pub(crate) url: Option<String>,
    pub(crate) base_dn: Option<String>,
    pub(crate) bind_dn: Option<String>,
    pub(crate) password_file: Option<PathBuf>,
    pub(crate) timeout_secs: Option<i64>,
    pub(crate) object_classes: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) attributes: RawLdapAttributes,
    #[serde(default)]
    pub(crate) tls: RawTls,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLdapAttributes {
    pub(crate) address: Option<String>,
    pub(crate) mailbox_server: Option<String>,
    pub(crate) password_hash: Option<String>,
    pub(crate) status: Option<String>,
    pub(crate) block_reason: Option<String>,
    pub(crate) blocked_at: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StateBackend {
    #[default]
    Embedded,
    Redis,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawState {
    #[serde(default)]
    pub(crate) backend: StateBackend,
    pub(crate) path: Option<PathBuf>,
    pub(crate) url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub(crate) name: String,
    pub(crate) roles: Vec<Role>,
    pub(crate) host: String,
    #[serde(default)]
    pub(crate) ports: Ports<i64>,
    pub(crate) group: Option<String>,
    pub(crate) weight: Option<i64>,
    pub(crate) maildir_root: Option<PathBuf>,
    pub(crate) postfix_dir: Option<PathBuf>,
    pub(crate) dovecot_config: Option<PathBuf>,
    pub(crate) passwd_file: Option<PathBuf>,
    pub(crate) probe_account: Option<String>,
    pub(crate) pid_file: Option<PathBuf>,
    pub(crate) http_path: Option<String>,
    pub(crate) replica_of: Option<String>,
    pub(crate) replica_max_lag_secs: Option<i64>,
    pub(crate) backup_status: Option<PathBuf>,
    pub(crate) backup_max_age_hours: Option<i64>,
    #[serde(default)]
    pub(crate) tls: RawTls,
    pub(crate) access: Option<String>,
    pub(crate) ssh: Option<String>,
    pub(crate) identity_file: Option<PathBuf>,
    pub(crate) known_hosts: Option<PathBuf>,
    pub(crate) jump: Option<Vec<String>>,
    pub(crate) mail_log: Option<OneOrMore<PathBuf>>,
    pub(crate) canary: Option<bool>,
    pub(crate) package_root: Option<PathBuf>,
    pub(crate) drain: Option<super::Drain>,
    pub(crate) services: Option<Vec<RawService>>,
    pub(crate) reboot: Option<Vec<String>>,
    pub(crate) update_command: Option<Vec<String>>,
}

/// One `[[server.services]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawService {
    pub(crate) name: String,
    pub(crate) pid_file: PathBuf,
    /// One command, or several run in order.
    pub(crate) restart: Option<OneOrMore<Vec<String>>>,
    pub(crate) stop: Option<Vec<String>>,
    pub(crate) start: Option<Vec<String>>,
    /// Packages (globs) whose update stops it first.
    pub(crate) packages: Option<Vec<String>>,
}

/// A key that takes one value or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMore<T> {
    One(T),
    More(Vec<T>),
}

impl<T> OneOrMore<T> {
    pub(crate) fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMore::One(v) => vec![v],
            OneOrMore::More(v) => v,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub(crate) starttls: Option<crate::fleet::StartTls>,
    pub(crate) verify: Option<bool>,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) server_name: Option<String>,
}

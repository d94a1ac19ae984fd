//! An account: its address, where its mailbox lives, its status and password hash.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Address;

/// Why and since when an account may not send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendBlock {
    /// The reason shown to the sender and the admin.
    pub reason: String,
    /// When the block was set (second precision, as LDAP GeneralizedTime keeps it).
    pub since: DateTime<Utc>,
}

impl SendBlock {
    /// A block starting now.
    pub fn now(reason: impl Into<String>) -> Self {
        let now = Utc::now();
        SendBlock {
            reason: reason.into(),
            since: DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now),
        }
    }
}

/// The status an admin sees; a locked account can also be send-blocked underneath.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccountStatus {
    /// Normal.
    Active,
    /// Locked while its mailbox moves between stores.
    Locked,
    /// May not send mail.
    SendBlocked,
}

impl std::fmt::Display for AccountStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AccountStatus::Active => "active",
            AccountStatus::Locked => "locked",
            AccountStatus::SendBlocked => "send-blocked",
        })
    }
}

/// One account of the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Its address.
    pub address: Address,
    /// The name of the mailbox server holding its mailbox.
    pub server: String,
    /// Its password hash in `{SCHEME}...` form, if it has one.
    #[serde(skip_serializing)]
    pub password_hash: Option<String>,
    /// Locked for a mailbox move.
    pub locked: bool,
    /// Set while the account may not send.
    pub send_block: Option<SendBlock>,
    /// When the password last changed, where the directory says (LDAP `pwdChangedTime`,
    /// kept by the ppolicy overlay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_changed: Option<DateTime<Utc>>,
}

impl Account {
    /// A new active account.
    pub fn new(address: Address, server: impl Into<String>, password_hash: Option<String>) -> Self {
        Account {
            address,
            server: server.into(),
            password_hash,
            locked: false,
            send_block: None,
            password_changed: None,
        }
    }

    /// The status to show: a lock outranks a send block.
    pub fn status(&self) -> AccountStatus {
        if self.locked {
            AccountStatus::Locked
        } else if self.send_block.is_some() {
            AccountStatus::SendBlocked
        } else {
            AccountStatus::Active
        }
    }

    /// The hash's scheme (`CRYPT`, `SSHA`...), safe to show where the hash itself is not.
    pub fn password_scheme(&self) -> Option<&str> {
        self.password_hash
            .as_deref()
            .and_then(crate::password::scheme)
    }
}

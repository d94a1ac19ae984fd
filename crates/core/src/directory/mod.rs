//! The account directory: one trait, two backends (embedded SQLite and LDAP).

mod embedded;
mod ldap;
mod ldap_conn;
mod ldap_login;

use async_trait::async_trait;

pub use embedded::EmbeddedDirectory;
pub use ldap::LdapDirectory;
pub use ldap_login::group_login;

use crate::config::DirectoryConfig;
use crate::{Account, Address, SendBlock};

/// Why a directory operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The account exists already.
    #[error("account {0} already exists")]
    Duplicate(Address),
    /// No such account.
    #[error("no account {0}")]
    NotFound(Address),
    /// The account is no longer on the server a compare-and-set expected.
    #[error("account {address} is no longer on {expected}: not switched")]
    NotOn {
        /// The account.
        address: Address,
        /// Where it was expected.
        expected: String,
    },
    /// The embedded database failed.
    #[error("account database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The LDAP server failed or refused.
    #[error("LDAP {url}: {message}")]
    Ldap {
        /// The server.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A stored entry could not be read back as an account.
    #[error("directory entry {entry}: {message}")]
    Corrupt {
        /// The entry (address or DN).
        entry: String,
        /// What is wrong with it.
        message: String,
    },
    /// A local file (database directory, password file) failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Which accounts to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this domain.
    pub domain: Option<String>,
    /// Only mailboxes on this server.
    pub server: Option<String>,
    /// Only locked accounts (a move's lock): asked of the directory, not filtered here, so
    /// a check every round reads a few entries rather than a store's every account.
    pub locked: bool,
}

impl Filter {
    /// Whether an account passes the filter.
    pub fn matches(&self, a: &Account) -> bool {
        self.domain
            .as_deref()
            .is_none_or(|d| a.address.domain() == d)
            && self.server.as_deref().is_none_or(|s| a.server == s)
            && (!self.locked || a.locked)
    }
}

/// Storage of accounts. Backends store what they are given; checks against the fleet are
/// [`crate::AccountBook`]'s job, so every backend enforces the same rules.
#[async_trait]
pub trait Directory: Send + Sync {
    /// Accounts passing the filter, sorted by address.
    async fn list(&self, filter: &Filter) -> Result<Vec<Account>, DirectoryError>;
    /// One account.
    async fn get(&self, address: &Address) -> Result<Option<Account>, DirectoryError>;
    /// Adds accounts; fails with `Duplicate` (adding none) if any exists already.
    async fn add(&self, accounts: &[Account]) -> Result<(), DirectoryError>;
    /// Removes an account.
    async fn remove(&self, address: &Address) -> Result<(), DirectoryError>;
    /// Records that the mailbox now lives on `server`.
    async fn set_server(&self, address: &Address, server: &str) -> Result<(), DirectoryError>;
    /// Moves the account from `from` to `to` only if it is still on `from` (compare and set,
    /// in one directory operation): a move never switches an account someone else moved.
    async fn switch_server(
        &self,
        address: &Address,
        from: &str,
        to: &str,
    ) -> Result<(), DirectoryError>;
    /// Locks (for a move) or unlocks.
    async fn set_locked(&self, address: &Address, locked: bool) -> Result<(), DirectoryError>;
    /// Blocks sending (Some) or lifts the block (None).
    async fn set_send_block(
        &self,
        address: &Address,
        block: Option<&SendBlock>,
    ) -> Result<(), DirectoryError>;
    /// Sets or clears the password hash.
    async fn set_password_hash(
        &self,
        address: &Address,
        hash: Option<&str>,
    ) -> Result<(), DirectoryError>;

    /// The password hash, `None` if the account has none.
    async fn password_hash(&self, address: &Address) -> Result<Option<String>, DirectoryError> {
        match self.get(address).await? {
            Some(a) => Ok(a.password_hash),
            None => Err(DirectoryError::NotFound(address.clone())),
        }
    }
}

/// Opens the configured directory.
pub async fn open(config: &DirectoryConfig) -> Result<Box<dyn Directory>, DirectoryError> {
    Ok(match config {
        DirectoryConfig::Embedded { path } => Box::new(EmbeddedDirectory::open(path).await?),
        DirectoryConfig::Ldap(l) => Box::new(LdapDirectory::connect(l).await?),
    })
}

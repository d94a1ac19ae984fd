//! Directory operations checked against the fleet: the rules every backend shares.

use std::path::Path;

use crate::address::AddressError;
use crate::directory::{self, Directory, DirectoryError, Filter};
use crate::fleet::{Fleet, Role};
use crate::import::{self, ImportError};
use crate::password::{self, HashError};
use crate::routing::{Published, RoutingError};
use crate::{Account, Address, Config, SendBlock};

/// Why an account operation was refused or failed; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The address is malformed.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// The server is not in the fleet.
    #[error("unknown server {server:?} (mailbox servers: {})", known.join(", "))]
    UnknownServer {
        /// The name given.
        server: String,
        /// The mailbox servers the config has.
        known: Vec<String>,
    },
    /// The server exists but holds no mailboxes.
    #[error("server {0:?} is not a mailbox server (its roles lack \"mailbox\")")]
    NotMailbox(String),
    /// The password hash is unacceptable.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// The import file is unusable.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// The directory failed or refused.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// The directory was changed, but routing could not be published from it.
    #[error("the directory was updated, but publishing the routing maps failed: {0}")]
    Routing(#[from] RoutingError),
}

/// The account directory of a fleet.
pub struct AccountBook {
    dir: Box<dyn Directory>,
    fleet: Fleet,
    reach: mailfleet_remote::Reach,
    /// One publication at a time: each reads the directory and writes what it read, so two
    /// at once could finish in the wrong order and put an older state (an account not yet
    /// locked, say) back on the servers.
    publishing: tokio::sync::Mutex<()>,
}

impl AccountBook {
    /// Opens the directory the config names.
    pub async fn open(config: &Config) -> Result<Self, AccountError> {
        let dir = directory::open(&config.directory).await?;
        Ok(Self::new(dir, config.fleet.clone()))
    }

    /// Wraps a directory backend.
    pub fn new(dir: Box<dyn Directory>, fleet: Fleet) -> Self {
        AccountBook {
            dir,
            fleet,
            reach: mailfleet_remote::Reach::new(),
            publishing: tokio::sync::Mutex::new(()),
        }
    }

    /// Uses these connections to the servers (a daemon's, shared with its other parts).
    pub fn with_reach(mut self, reach: mailfleet_remote::Reach) -> Self {
        self.reach = reach;
        self
    }

    /// The backend, for reads that need no checks.
    pub fn directory(&self) -> &dyn Directory {
        self.dir.as_ref()
    }

    /// The fleet the accounts live on.
    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// Checks that `server` is a mailbox server of the fleet.
    pub fn check_server(&self, server: &str) -> Result<(), AccountError> {
        match self.fleet.server(server) {
            None => Err(AccountError::UnknownServer {
                server: server.to_string(),
                known: self
                    .fleet
                    .mailbox_names()
                    .into_iter()
                    .map(String::from)
                    .collect(),
            }),
            Some(s) if !s.has_role(Role::Mailbox) => Err(AccountError::NotMailbox(server.into())),
            Some(_) => Ok(()),
        }
    }

    /// Accounts, optionally of one domain or one server.
    pub async fn list(&self, filter: &Filter) -> Result<Vec<Account>, AccountError> {
        if let Some(s) = &filter.server {
            self.check_server(s)?;
        }
        let filter = Filter {
            domain: filter
                .domain
                .as_ref()
                .map(|d| d.trim().to_ascii_lowercase()),
            server: filter.server.clone(),
            locked: filter.locked,
        };
        Ok(self.dir.list(&filter).await?)
    }

    /// One account.
    pub async fn show(&self, address: &str) -> Result<Account, AccountError> {
        let a = Address::parse(address)?;
        self.dir
            .get(&a)
            .await?
            .ok_or(AccountError::Directory(DirectoryError::NotFound(a)))
    }

    /// Checks and builds a new account without storing it.
    pub fn prepare(
        &self,
        address: &str,
        server: &str,
        password_hash: Option<&str>,
    ) -> Result<Account, AccountError> {
        let a = Address::parse(address)?;
        self.check_server(server)?;
        if let Some(h) = password_hash {
            password::check(h)?;
        }
        Ok(Account::new(a, server, password_hash.map(str::to_string)))
    }

    /// Rewrites every MTA's maps and every store's user file from the directory, so routing
    /// follows it (files are replaced only when their content changes).
    pub async fn publish(&self) -> Result<Published, AccountError> {
        let _one = self.publishing.lock().await;
        let all = self.dir.list(&Filter::default()).await?;
        let done = crate::routing::publish(&self.reach, &self.fleet, &all).await?;
        for path in &done.changed {
            tracing::info!("rewrote {}", path.display());
        }
        for mta in &done.reloaded {
            tracing::info!("reloaded Postfix on {mta}");
        }
        Ok(done)
    }

    /// Adds one account, and publishes routing.
    pub async fn add(
        &self,
        address: &str,
        server: &str,
        password_hash: Option<&str>,
    ) -> Result<(Account, Published), AccountError> {
        let account = self.prepare(address, server, password_hash)?;
        self.dir.add(std::slice::from_ref(&account)).await?;
        Ok((account, self.publish().await?))
    }

    /// Removes an account from the directory (its mailbox data is left alone), and publishes
    /// routing.
    pub async fn remove(&self, address: &str) -> Result<Published, AccountError> {
        self.dir.remove(&Address::parse(address)?).await?;
        self.publish().await
    }

    /// Points an account at another mailbox server and publishes routing, so new mail and
    /// logins go there (moving the data is the `move` command's job).
    pub async fn set_server(&self, address: &str, server: &str) -> Result<Published, AccountError> {
        let a = Address::parse(address)?;
        self.check_server(server)?;
        self.dir.set_server(&a, server).await?;
        self.publish().await
    }

    /// Switches an account from `from` to `to` only if it is still on `from`, and publishes
    /// routing: the end of a mailbox move.
    pub async fn switch_server(
        &self,
        address: &str,
        from: &str,
        to: &str,
    ) -> Result<Published, AccountError> {
        let a = Address::parse(address)?;
        self.check_server(to)?;
        self.dir.switch_server(&a, from, to).await?;
        self.publish().await
    }

    /// Locks or unlocks an account for a move, and publishes routing: while locked the MTAs
    /// defer its mail and its store refuses its logins; an unlock then flushes every MTA's
    /// queue so the mail that waited is delivered at once.
    pub async fn set_locked(&self, address: &str, locked: bool) -> Result<Published, AccountError> {
        self.dir
            .set_locked(&Address::parse(address)?, locked)
            .await?;
        let published = self.publish().await?;
        if !locked {
            self.flush(&[address.to_string()]).await?;
        }
        Ok(published)
    }

    /// Delivers now what the MTAs queued for these accounts, leaving alone every message with
    /// a recipient still locked.
    async fn flush(&self, unlocked: &[String]) -> Result<(), AccountError> {
        let still: std::collections::BTreeSet<String> = self
            .dir
            .list(&Filter {
                domain: None,
                server: None,
                locked: true,
            })
            .await?
            .into_iter()
            .map(|a| a.address.to_string())
            .collect();
        crate::routing::flush(&self.reach, &self.fleet, unlocked, &still).await?;
        Ok(())
    }

    /// Locks or unlocks these accounts together (a store's upgrade with its mail queued),
    /// publishing routing once; an unlock then flushes every MTA's queue.
    pub async fn set_locked_all(
        &self,
        addresses: &[String],
        locked: bool,
    ) -> Result<Published, AccountError> {
        for a in addresses {
            self.dir.set_locked(&Address::parse(a)?, locked).await?;
        }
        let published = self.publish().await?;
        if !locked {
            self.flush(addresses).await?;
        }
        Ok(published)
    }

    /// Blocks sending, with a reason.
    pub async fn block_sending(
        &self,
        address: &str,
        reason: &str,
    ) -> Result<SendBlock, AccountError> {
        let block = SendBlock::now(reason.trim());
        self.dir
            .set_send_block(&Address::parse(address)?, Some(&block))
            .await?;
        Ok(block)
    }

    /// Lifts a send block.
    pub async fn unblock_sending(&self, address: &str) -> Result<(), AccountError> {
        Ok(self
            .dir
            .set_send_block(&Address::parse(address)?, None)
            .await?)
    }

    /// The password hash of an account, if it has one.
    pub async fn password_hash(&self, address: &str) -> Result<Option<String>, AccountError> {
        Ok(self.dir.password_hash(&Address::parse(address)?).await?)
    }

    /// Imports a CSV or LDIF file: every record is checked first, and either all are added
    /// or none; then routing is published. Returns the number added.
    pub async fn import(&self, path: &Path) -> Result<(usize, Published), AccountError> {
        let records = import::read(path, &import::Attributes::default())?;
        let mut accounts: Vec<Account> = Vec::with_capacity(records.len());
        let mut seen = std::collections::HashMap::new();
        for r in records {
            let at = |e: AccountError| ImportError::Record {
                file: path.display().to_string(),
                line: r.line,
                message: e.to_string(),
            };
            let account = self
                .prepare(&r.address, &r.server, r.password_hash.as_deref())
                .map_err(at)?;
            if let Some(first) = seen.insert(account.address.clone(), r.line) {
                return Err(ImportError::Record {
                    file: path.display().to_string(),
                    line: r.line,
                    message: format!("{} is also on line {first}", account.address),
                }
                .into());
            }
            accounts.push(account);
        }
        self.dir.add(&accounts).await?;
        Ok((accounts.len(), self.publish().await?))
    }
}

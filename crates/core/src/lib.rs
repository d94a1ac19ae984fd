//! mailfleet's core: the config file, the fleet model and the account directory.
//!
//! Layout:
//! - [`config`]: `mailfleet.toml`, parsed and validated in one step into a [`config::Config`];
//! - [`fleet`]: the servers, their roles, ports and redundancy groups;
//! - [`address`] and [`account`]: what an account is;
//! - [`directory`]: the account directory trait and its backends (embedded SQLite, LDAP);
//! - [`accounts`]: directory operations checked against the fleet (add, move, import);
//! - [`routing`]: publishes where each mailbox lives to Postfix maps and Dovecot user files;
//! - [`child`]: waiting for a child process with a deadline; [`follow`]: a log followed across
//!   rotation, [`follow_remote`] the same on a server through its access; [`postfix`]: Postfix's queue and tools; [`tls`]: the CAs every TLS client
//!   trusts;
//! - [`shutdown`]: one shutdown signal for every long-running part; [`audit`]: the audit log of
//!   every action that changes something.
//! - [`replica`]: a directory replica beside its master (their `contextCSN`s).

pub mod account;
pub mod accounts;
pub mod address;
pub mod audit;
pub mod backup_status;
pub mod child;
pub mod config;
pub mod directory;
pub mod fleet;
pub mod follow;
pub mod follow_remote;
pub mod import;
pub mod password;
pub mod postfix;
pub mod replica;
pub mod routing;
pub mod series;
pub mod shutdown;
pub mod tls;
pub mod upgrade_marks;

pub use account::{Account, AccountStatus, SendBlock};
pub use accounts::AccountBook;
pub use address::Address;
pub use config::Config;
pub use fleet::{Fleet, Role, Server};

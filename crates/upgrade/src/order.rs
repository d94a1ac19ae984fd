//! Each server's place in an upgrade: the directory master first (everything reads it), then
//! its replicas, then MTAs and proxies (which queue and route around a store that is down),
//! then the mailbox stores; canaries first within their place; then by name.

use mailfleet_core::{Role, Server};
use serde::Serialize;

/// Where in the order a server goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rank {
    /// A directory server that replicates from no other.
    DirectoryMaster,
    /// A directory replica.
    DirectoryReplica,
    /// An MTA.
    Mta,
    /// An IMAP/POP3 proxy.
    Proxy,
    /// A mailbox store.
    Store,
}

impl Rank {
    /// A server's place: its earliest role's (a directory server that is also a store goes
    /// with the directory).
    pub fn of(server: &Server) -> Rank {
        if server.has_role(Role::Directory) {
            if server.replica_of.is_some() {
                Rank::DirectoryReplica
            } else {
                Rank::DirectoryMaster
            }
        } else if server.has_role(Role::Mta) {
            Rank::Mta
        } else if server.has_role(Role::Proxy) {
            Rank::Proxy
        } else {
            Rank::Store
        }
    }

    /// The role whose spacing and canary soak apply.
    pub fn role(self) -> Role {
        match self {
            Rank::DirectoryMaster | Rank::DirectoryReplica => Role::Directory,
            Rank::Mta => Role::Mta,
            Rank::Proxy => Role::Proxy,
            Rank::Store => Role::Mailbox,
        }
    }

    /// Why a server of this rank goes where it does.
    pub fn why(self) -> &'static str {
        match self {
            Rank::DirectoryMaster => {
                "the directory master first: every other server reads it, and its replicas serve meanwhile"
            }
            Rank::DirectoryReplica => {
                "a directory replica after its master, spaced so that a bad update is caught while the others serve"
            }
            Rank::Mta => {
                "MTAs after the directory, one of a group at a time while its partners take the mail"
            }
            Rank::Proxy => {
                "proxies after the MTAs, one of a group at a time while its partners route the logins"
            }
            Rank::Store => {
                "mailbox stores last, once what queues their mail and routes their logins is patched"
            }
        }
    }
}

/// The servers in upgrade order.
pub fn ordered<'a>(servers: impl IntoIterator<Item = &'a Server>) -> Vec<&'a Server> {
    let mut v: Vec<&Server> = servers.into_iter().collect();
    v.sort_by(|a, b| (Rank::of(a), !a.canary, &a.name).cmp(&(Rank::of(b), !b.canary, &b.name)));
    v
}

//! `mailfleet accounts ...`: the account directory (the book republishes routing after
//! every change).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use mailfleet_core::directory::Filter;
use mailfleet_core::{Account, AccountBook};
use serde::Serialize;

use super::accounts_print::{print_one, print_table};
use super::{Context, exit, print_json};

#[derive(Debug, Subcommand)]
pub(crate) enum AccountsCmd {
    /// List accounts.
    List {
        /// Only this domain.
        #[arg(long)]
        domain: Option<String>,
        /// Only mailboxes on this server.
        #[arg(long)]
        server: Option<String>,
        /// Only accounts locked by a move (their mail waits, their logins are refused).
        #[arg(long)]
        locked: bool,
    },
    /// Show one account.
    Show { address: String },
    /// Add an account on a mailbox server.
    Add {
        address: String,
        /// The mailbox server.
        #[arg(long)]
        server: String,
        /// Password hash in {SCHEME}... form, e.g. {CRYPT}$6$... (never a plaintext password).
        #[arg(long)]
        password_hash: Option<String>,
    },
    /// Remove an account from the directory (its mail stays on the store).
    Remove { address: String },
    /// Point an account at another mailbox server; new mail goes there.
    SetServer { address: String, server: String },
    /// Lock an account (mailbox move in progress).
    Lock { address: String },
    /// Unlock an account.
    Unlock { address: String },
    /// Block an account from sending.
    Block {
        address: String,
        /// Why, shown to the sender and the admin.
        #[arg(long)]
        reason: String,
    },
    /// Lift a send block.
    Unblock { address: String },
    /// Import accounts from a CSV (address,server[,password_hash]) or LDIF file: all or nothing.
    Import { file: PathBuf },
}

/// An account as `--json` prints it: the hash itself never leaves the directory.
#[derive(Serialize)]
struct AccountView<'a> {
    #[serde(flatten)]
    account: &'a Account,
    status: String,
    password_scheme: Option<&'a str>,
}

fn view(a: &Account) -> AccountView<'_> {
    AccountView {
        account: a,
        status: a.status().to_string(),
        password_scheme: a.password_scheme(),
    }
}

pub(crate) async fn run(cmd: AccountsCmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    let config = ctx.load()?;
    let book = AccountBook::open(&config).await?;
    let published = match cmd {
        AccountsCmd::List {
            domain,
            server,
            locked,
        } => {
            let list = book
                .list(&Filter {
                    domain,
                    server,
                    locked,
                })
                .await?;
            if ctx.json {
                print_json(&list.iter().map(view).collect::<Vec<_>>())?;
            } else {
                print_table(&list);
            }
            None
        }
        AccountsCmd::Show { address } => {
            let a = book.show(&address).await?;
            if ctx.json {
                print_json(&view(&a))?;
            } else {
                print_one(&a);
            }
            None
        }
        AccountsCmd::Add {
            address,
            server,
            password_hash,
        } => {
            let (a, p) = book
                .add(&address, &server, password_hash.as_deref())
                .await?;
            println!("added {} on {}", a.address, a.server);
            Some(p)
        }
        AccountsCmd::Remove { address } => {
            let p = book.remove(&address).await?;
            println!("removed {address}");
            Some(p)
        }
        AccountsCmd::SetServer { address, server } => {
            let p = book.set_server(&address, &server).await?;
            println!("{address} now on {server}");
            Some(p)
        }
        AccountsCmd::Lock { address } => {
            let p = book.set_locked(&address, true).await?;
            println!("{address} locked");
            Some(p)
        }
        AccountsCmd::Unlock { address } => {
            let p = book.set_locked(&address, false).await?;
            println!("{address} unlocked");
            Some(p)
        }
        AccountsCmd::Block { address, reason } => {
            book.block_sending(&address, &reason).await?;
            println!("{address} blocked from sending: {reason}");
            None
        }
        AccountsCmd::Unblock { address } => {
            book.unblock_sending(&address).await?;
            println!("{address} may send again");
            None
        }
        AccountsCmd::Import { file } => {
            let (n, p) = book.import(&file).await?;
            println!("imported {n} accounts from {}", file.display());
            Some(p)
        }
    };
    if let Some(p) = published
        && !p.unroutable.is_empty()
    {
        eprintln!(
            "warning: no LMTP route for {} (server unknown to the config or without an lmtp port)",
            p.unroutable.join(", ")
        );
    }
    Ok(exit::code(exit::OK))
}

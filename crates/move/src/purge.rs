//! `move purge`: deletes the old copies that moves left on their sources once they are older
//! than the grace period, each only after checking that nothing wrote to it since the switch
//! (a late write is reported and that copy kept: its mail exists nowhere else).

use std::time::Duration;

use mailfleet_core::{AccountBook, Address, Config, Server};
use mailfleet_remote::{Cmd, Reach};

use crate::copy::{failed, run_doveadm};
use crate::error::MoveError;
use crate::journal::{Entry, Journal, Phase};
use crate::verify::{digest, folders};

/// What happened to one old copy.
#[derive(Debug, serde::Serialize)]
pub struct Purged {
    /// The move that left it.
    pub id: i64,
    /// The account.
    pub address: String,
    /// The store it is on.
    pub store: String,
    /// Whether it is gone now.
    pub deleted: bool,
    /// Why it was kept, or what failed.
    pub note: Option<String>,
}

/// The old copies to look at: the latest finished move off each (account, store), not
/// purged, switched at least `older_than` ago.
fn due(
    journal: &Journal,
    accounts: &[String],
    older_than: Duration,
) -> Result<Vec<Entry>, MoveError> {
    let now = crate::journal::now_ms() / 1000;
    let mut latest: std::collections::BTreeMap<(String, String), Entry> = Default::default();
    for e in journal
        .all()?
        .into_iter()
        .filter(|e| e.phase == Phase::Done)
    {
        latest.insert((e.address.clone(), e.source.clone()), e);
    }
    Ok(latest
        .into_values()
        .filter(|e| e.purged.is_none() && e.old_digest.is_some())
        .filter(|e| now - e.updated >= older_than.as_secs() as i64)
        .filter(|e| {
            accounts.is_empty() || accounts.iter().any(|a| a.eq_ignore_ascii_case(&e.address))
        })
        .collect())
}

/// Deletes the old copies due (of `accounts`, or all when empty) older than `older_than`
/// (the config's `keep_old_copy` when `None`).
pub async fn purge(
    config: &Config,
    accounts: &[String],
    older_than: Option<Duration>,
) -> Result<Vec<Purged>, MoveError> {
    let journal = Journal::open(&config.data_dir)?;
    let book = AccountBook::open(config)
        .await
        .map_err(|e| MoveError::Directory(e.to_string()))?;
    let reach = Reach::new();
    let deadline = Duration::from_secs(600);
    let mut out = Vec::new();
    for e in due(
        &journal,
        accounts,
        older_than.unwrap_or(config.moves.keep_old_copy),
    )? {
        let r = one(&book, &reach, &journal, &e, deadline).await;
        let (deleted, note) = match r {
            Ok(None) => (true, None),
            Ok(Some(kept)) => (false, Some(kept)),
            Err(err) => (false, Some(err.to_string())),
        };
        out.push(Purged {
            id: e.id,
            address: e.address,
            store: e.source,
            deleted,
            note,
        });
    }
    Ok(out)
}

/// Deletes one old copy; `Some(why)` when it is kept.
async fn one(
    book: &AccountBook,
    reach: &Reach,
    journal: &Journal,
    e: &Entry,
    deadline: Duration,
) -> Result<Option<String>, MoveError> {
    let account = book
        .show(&e.address)
        .await
        .map_err(|err| MoveError::Directory(err.to_string()))?;
    if account.server == e.source {
        // Moved back since: what is there is the live mailbox, not an old copy.
        journal.purged(&e.address, &e.source)?;
        return Ok(Some(format!(
            "lives on {} again: nothing to purge",
            e.source
        )));
    }
    let source = book
        .fleet()
        .server(&e.source)
        .ok_or_else(|| MoveError::Config {
            server: e.source.clone(),
            message: "not in the config".into(),
        })?;
    let address =
        Address::parse(&e.address).map_err(|err| MoveError::Directory(err.to_string()))?;
    let now = folders(reach, source, &address, deadline).await?;
    if Some(digest(&now)) != e.old_digest {
        return Ok(Some(format!(
            "LATE WRITE: the old copy on {} changed after the switch to {}; kept (copy what is new to the account's store, then purge)",
            e.source, e.target
        )));
    }
    let home = home(reach, source, &address, deadline).await?;
    let path = home.display().to_string();
    let cmd = Cmd::new(["rm", "-rf", "--", path.as_str()]).deadline(deadline);
    reach.check(&source.name, &source.access, &cmd).await?;
    forget(reach, source, &address, deadline).await?;
    journal.purged(&e.address, &e.source)?;
    Ok(None)
}

/// The account's home on the store as its userdb says, checked to be inside the store's
/// Maildir root (and not the root itself) before anything is deleted there.
async fn home(
    reach: &Reach,
    store: &Server,
    address: &Address,
    deadline: Duration,
) -> Result<std::path::PathBuf, MoveError> {
    let user = address.to_string();
    let out = run_doveadm(reach, store, &["user", "-f", "home", &user], deadline).await?;
    let home = std::path::PathBuf::from(out.trim());
    let root = store
        .maildir_root
        .as_ref()
        .ok_or_else(|| MoveError::Config {
            server: store.name.clone(),
            message:
                "no maildir_root in the config: an old copy cannot be checked before deleting it"
                    .into(),
        })?;
    let inside = home.is_absolute()
        && home.starts_with(root)
        && home != *root
        && !home
            .components()
            .any(|c| c == std::path::Component::ParentDir);
    if !inside {
        return Err(MoveError::Config {
            server: store.name.clone(),
            message: format!(
                "{address}'s home {:?} is not inside maildir_root {}: not deleted",
                out.trim(),
                root.display()
            ),
        });
    }
    Ok(home)
}

/// Takes the account out of the store's incoming-users file.
async fn forget(
    reach: &Reach,
    store: &Server,
    address: &Address,
    deadline: Duration,
) -> Result<(), MoveError> {
    let Some(file) = store.incoming_users() else {
        return Ok(());
    };
    let path = file.display().to_string();
    let read = Cmd::new(["cat", "--", path.as_str()]).deadline(deadline);
    let out = reach.run(&store.name, &store.access, &read).await?;
    if !out.success() {
        return Err(failed(store, &read, &out));
    }
    let prefix = format!("{address}:");
    let kept: String = out
        .stdout_text()
        .lines()
        .filter(|l| !l.starts_with(&prefix))
        .map(|l| format!("{l}\n"))
        .collect();
    mailfleet_core::routing::write_if_changed(reach, &store.name, &store.access, &file, &kept)
        .await?;
    Ok(())
}

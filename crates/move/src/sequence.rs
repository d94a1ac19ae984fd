//! One account's move, as one sequence: the target is told of the account; copy passes run
//! while the user works, until one is short enough that the lock fits its budget; then the
//! account is locked (the MTAs queue its mail, its logins are refused), its sessions on the
//! source are ended, a last pass copies what changed, both sides are verified, the directory
//! switches the account to the target (only if it is still on the source), routing follows,
//! and the unlock delivers the mail that waited. A failed verify unlocks and leaves the
//! account where it was.

use std::time::{Duration, Instant};

use mailfleet_core::{AccountBook, Address, Server};
use mailfleet_remote::Reach;

use crate::copy::{pass, provision, run_doveadm};
use crate::error::MoveError;
use crate::verify::{compare, folders};

/// How a move runs.
#[derive(Debug, Clone)]
pub struct MoveOptions {
    /// The lock should last at most about this long: copying goes on before it until a pass
    /// is this short.
    pub lock_budget: Duration,
    /// Copy passes before the lock, at most.
    pub max_passes: usize,
    /// Each doveadm command's deadline.
    pub deadline: Duration,
}

impl Default for MoveOptions {
    fn default() -> Self {
        MoveOptions {
            lock_budget: Duration::from_secs(5),
            max_passes: 10,
            deadline: Duration::from_secs(3600),
        }
    }
}

/// What a move did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Moved {
    /// The account.
    pub address: String,
    /// Where it was.
    pub from: String,
    /// Where it is now.
    pub to: String,
    /// Each pass before the lock (ms).
    pub passes_ms: Vec<f64>,
    /// How long the account was locked (ms).
    pub lock_ms: f64,
    /// Folders and messages on the target.
    pub folders: usize,
    /// Messages moved.
    pub messages: u64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Ends the account's sessions on `store` (IMAP, POP3, LMTP...) and confirms none remain.
async fn kick(
    reach: &Reach,
    store: &Server,
    address: &Address,
    deadline: Duration,
) -> Result<(), MoveError> {
    let user = address.to_string();
    for _ in 0..10 {
        let who = run_doveadm(reach, store, &["-f", "tab", "who", &user], deadline).await?;
        if who.lines().skip(1).all(|l| l.trim().is_empty()) {
            return Ok(());
        }
        // Exit 68: nobody was left to kick by the time it ran.
        let cmd = mailfleet_remote::Cmd::new(crate::copy::doveadm_argv(store, &["kick", &user]))
            .deadline(deadline);
        let out = reach.run(&store.name, &store.access, &cmd).await?;
        if !matches!(out.code, Some(0 | 68)) {
            return Err(crate::copy::failed(store, &cmd, &out));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(MoveError::Config {
        server: store.name.clone(),
        message: format!("{address} still has sessions after ten kicks"),
    })
}

/// Waits until `store` lets the account log in: Dovecot looks at a changed passwd-file at
/// most once a second, so for a moment after the unlock it still refuses the login.
async fn logins_open(reach: &Reach, store: &Server, address: &Address) -> Result<(), MoveError> {
    let user = address.to_string();
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let cmd = mailfleet_remote::Cmd::new(crate::copy::doveadm_argv(
            store,
            &["auth", "lookup", &user],
        ))
        .deadline(Duration::from_secs(30));
        // Exit 67: the user is not known there yet (the old file still read).
        let out = reach
            .run(&store.name, &store.access, &cmd)
            .await?
            .stdout_text();
        let field = |name: &str| {
            out.lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim() == name)
                .map(|(_, v)| v.trim().to_string())
        };
        if field("user").as_deref() == Some(user.as_str()) && field("nologin").is_none() {
            return Ok(());
        }
        if Instant::now() >= end {
            return Err(MoveError::Config {
                server: store.name.clone(),
                message: format!("{address} still cannot log in 10 s after the unlock: {out}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Moves one account to `to`.
pub async fn move_account(
    book: &AccountBook,
    reach: &Reach,
    address: &Address,
    to: &str,
    opts: &MoveOptions,
) -> Result<Moved, MoveError> {
    let account = book
        .show(&address.to_string())
        .await
        .map_err(|e| MoveError::Directory(e.to_string()))?;
    let fleet = book.fleet();
    let find = |name: &str| {
        fleet.server(name).ok_or_else(|| MoveError::Config {
            server: name.to_string(),
            message: "not in the config".into(),
        })
    };
    let (source, target) = (find(&account.server)?, find(to)?);
    if source.name == target.name {
        return Err(MoveError::Config {
            server: to.into(),
            message: format!("{address} is on it already"),
        });
    }
    if account.locked {
        return Err(MoveError::Config {
            server: source.name.clone(),
            message: format!("{address} is locked: another move holds it (move status)"),
        });
    }
    provision(reach, target, address, opts.deadline).await?;
    let mut state = String::new();
    let mut passes = Vec::new();
    // Copy while the user works, until a pass fits the lock's budget.
    for _ in 0..opts.max_passes.max(1) {
        let p = pass(reach, source, target, address, &state, opts.deadline).await?;
        state = p.state;
        passes.push(ms(p.elapsed));
        if p.elapsed <= opts.lock_budget && !p.again {
            break;
        }
    }
    let locked_at = Instant::now();
    book.set_locked(&address.to_string(), true)
        .await
        .map_err(|e| MoveError::Directory(e.to_string()))?;
    let under_lock = async {
        kick(reach, source, address, opts.deadline).await?;
        // The last pass: nothing changes now; a pass that still says "again" runs again.
        let mut last = pass(reach, source, target, address, &state, opts.deadline).await?;
        for _ in 0..3 {
            if !last.again {
                break;
            }
            last = pass(reach, source, target, address, &last.state, opts.deadline).await?;
        }
        let (src, dst) = (
            folders(reach, source, address, opts.deadline).await?,
            folders(reach, target, address, opts.deadline).await?,
        );
        let diff = compare(&src, &dst);
        if !diff.is_empty() {
            return Err(MoveError::Verify {
                address: address.to_string(),
                differences: diff,
            });
        }
        book.switch_server(&address.to_string(), &source.name, &target.name)
            .await
            .map_err(|e| MoveError::Directory(e.to_string()))?;
        Ok(dst)
    }
    .await;
    // Unlocked whatever happened: on its new store after a switch, on its old one otherwise.
    let unlocked = book
        .set_locked(&address.to_string(), false)
        .await
        .map_err(|e| MoveError::Directory(e.to_string()));
    let dst = under_lock?;
    unlocked?;
    logins_open(reach, target, address).await?;
    Ok(Moved {
        address: address.to_string(),
        from: source.name.clone(),
        to: target.name.clone(),
        passes_ms: passes,
        lock_ms: ms(locked_at.elapsed()),
        folders: dst.len(),
        messages: dst.values().map(|f| f.messages).sum(),
    })
}

//! One account's move, as one recorded sequence: the target is told of the account; copy
//! passes run while the user works, until one is short enough that the lock fits its
//! budget; then the account is locked (the MTAs queue its mail, its logins are refused), its
//! sessions on the source are ended, a last pass copies what changed, both sides are
//! verified, the directory switches the account to the target (only if it is still on the
//! source), routing follows, and the unlock delivers the mail that waited. A failed verify
//! unlocks and leaves the account where it was.
//!
//! Each phase is written to the journal before its step is taken and every step can be
//! taken twice, so a move killed anywhere continues from its phase: a lock is taken again,
//! a pass copies again what the killed one may not have, a switch already made is seen in
//! the directory.

use std::time::{Duration, Instant};

use mailfleet_core::{AccountBook, Address, Server};
use mailfleet_remote::Reach;

use crate::copy::{durable, pass, provision, run_doveadm};
use crate::error::MoveError;
use crate::journal::{Entry, Journal, Phase};
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
    /// A copy pass waits while the source or the target has a higher 1-minute load per CPU.
    pub max_load: Option<f64>,
}

impl Default for MoveOptions {
    fn default() -> Self {
        MoveOptions {
            lock_budget: Duration::from_secs(5),
            max_passes: 10,
            deadline: Duration::from_secs(3600),
            max_load: None,
        }
    }
}

/// What a move did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Moved {
    /// Its number in the journal.
    pub id: i64,
    /// The account.
    pub address: String,
    /// Where it was.
    pub from: String,
    /// Where it is now.
    pub to: String,
    /// Copy passes, the last one under the lock included.
    pub passes: u32,
    /// How long the account was locked (ms).
    pub lock_ms: f64,
    /// Folders on the target, when this run verified them.
    pub folders: Option<usize>,
    /// Messages moved (as verified, or as counted when planned).
    pub messages: u64,
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

/// Runs recorded moves: one account at a time per call, any number of calls at once.
pub struct Mover<'a> {
    /// The directory and the fleet.
    pub book: &'a AccountBook,
    /// How servers are reached.
    pub reach: &'a Reach,
    /// Where every step is recorded.
    pub journal: &'a Journal,
    /// How moves run.
    pub opts: MoveOptions,
    /// One provisioning at a time: each rewrites the target's incoming-users file from what
    /// it read, so two at once would lose one of the accounts.
    provisioning: tokio::sync::Mutex<()>,
}

impl<'a> Mover<'a> {
    /// A mover over this directory, these connections and this journal.
    pub fn new(
        book: &'a AccountBook,
        reach: &'a Reach,
        journal: &'a Journal,
        opts: MoveOptions,
    ) -> Self {
        Mover {
            book,
            reach,
            journal,
            opts,
            provisioning: tokio::sync::Mutex::new(()),
        }
    }

    fn server(&self, name: &str) -> Result<&Server, MoveError> {
        self.book
            .fleet()
            .server(name)
            .ok_or_else(|| MoveError::Config {
                server: name.to_string(),
                message: "not in the config".into(),
            })
    }

    fn dir_err(e: impl std::fmt::Display) -> MoveError {
        MoveError::Directory(e.to_string())
    }

    /// Runs move `id` from its recorded phase to its end. On an error before the switch the
    /// account is unlocked and the move recorded as failed; after it the move stays where it
    /// was, for `move resume` to finish.
    pub async fn drive(&self, id: i64) -> Result<Moved, MoveError> {
        let entry = self.journal.claim(id)?;
        let resumed = entry.phase != Phase::Planned;
        let result = self.steps(entry, resumed).await;
        let entry = self.journal.get(id)?;
        match result {
            Ok(m) => {
                self.journal.release(id)?;
                Ok(m)
            }
            Err(e) if entry.phase < Phase::Switched => {
                let why = e.to_string();
                if entry.phase.may_hold_lock()
                    && let Err(u) = self.book.set_locked(&entry.address, false).await
                {
                    // Still locked: the move stays open so that `move resume` or
                    // `move abort` takes the lock off; `move status` shows it.
                    self.journal.release(id)?;
                    return Err(MoveError::StillLocked {
                        address: entry.address,
                        error: Box::new(e),
                        unlock: u.to_string(),
                    });
                }
                self.journal.lock_ends(id)?;
                self.journal.stop(id, Phase::Failed, &why)?;
                if entry.phase.may_hold_lock()
                    && let (Ok(source), Ok(address)) =
                        (self.server(&entry.source), Address::parse(&entry.address))
                    && let Err(w) = logins_open(self.reach, source, &address).await
                {
                    // Unlocked in the directory and the files: only slow to be reread.
                    tracing::warn!("{}: {w}", entry.address);
                }
                Err(e)
            }
            Err(e) => {
                self.journal.release(id)?;
                Err(e)
            }
        }
    }

    /// Locks the account in the directory and publishes routing (taking it again is harmless).
    async fn lock(&self, address: &str) -> Result<(), MoveError> {
        self.book
            .set_locked(address, true)
            .await
            .map(|_| ())
            .map_err(Self::dir_err)
    }

    /// One copy pass from the state the journal holds, recorded with its new state.
    async fn pass(
        &self,
        e: &mut Entry,
        source: &Server,
        target: &Server,
        address: &Address,
        // Without the previous pass's state: every message of both sides compared.
        full: bool,
    ) -> Result<crate::copy::Pass, MoveError> {
        let state = if full { "" } else { e.sync_state.as_str() };
        let p = pass(
            self.reach,
            source,
            target,
            address,
            state,
            self.opts.deadline,
        )
        .await?;
        self.journal.record_pass(e.id, &p.state, p.elapsed)?;
        e.passes += 1;
        e.sync_state = p.state.clone();
        Ok(p)
    }

    async fn steps(&self, mut e: Entry, resumed: bool) -> Result<Moved, MoveError> {
        let (source, target) = (self.server(&e.source)?, self.server(&e.target)?);
        let address = Address::parse(&e.address).map_err(Self::dir_err)?;
        let opts = &self.opts;
        let mut verified = None;
        // Whether this run took the lock itself: a resumed move takes it again first.
        let mut holding = false;
        loop {
            match e.phase {
                Phase::Planned => {
                    let account = self.book.show(&e.address).await.map_err(Self::dir_err)?;
                    if account.server != source.name {
                        return Err(MoveError::Config {
                            server: source.name.clone(),
                            message: format!(
                                "{address} is no longer there (the directory says {})",
                                account.server
                            ),
                        });
                    }
                    if account.locked {
                        return Err(MoveError::Config {
                            server: source.name.clone(),
                            message: format!("{address} is locked by something else"),
                        });
                    }
                    {
                        let _one = self.provisioning.lock().await;
                        provision(self.reach, target, &address, opts.deadline).await?;
                    }
                    self.journal.set_phase(e.id, Phase::Copying)?;
                }
                Phase::Copying => {
                    // Copy while the user works, until a pass fits the lock's budget.
                    while (e.passes as usize) < opts.max_passes.max(1) {
                        if let Some(max) = opts.max_load {
                            let id = e.id;
                            crate::throttle::quiet(
                                self.reach,
                                [source, target],
                                max,
                                Duration::from_secs(30),
                                |why| Ok(self.journal.waiting(id, why)?),
                            )
                            .await?;
                        }
                        let p = self.pass(&mut e, source, target, &address, false).await?;
                        if p.elapsed <= opts.lock_budget && !p.again {
                            break;
                        }
                    }
                    // The bulk of the copy flushed now, so that the flush under the lock has
                    // only the last pass to write.
                    durable(self.reach, target, &address, opts.deadline).await?;
                    // Recorded first: a move killed between the two takes the lock again.
                    self.journal.lock_begins(e.id)?;
                    self.lock(&e.address).await?;
                    holding = true;
                }
                Phase::Locked | Phase::Final => {
                    if !holding {
                        self.lock(&e.address).await?;
                        holding = true;
                    }
                    kick(self.reach, source, &address, opts.deadline).await?;
                    self.journal.set_phase(e.id, Phase::Final)?;
                    // The last pass: nothing changes now; one that still says "again" runs
                    // again. A delivery an MTA began before the lock may still land on the
                    // source after it: the verify then finds the source ahead, and another
                    // pass copies it (a copy that stays different fails the move). That pass
                    // is a full one: an incremental state `doveadm backup` printed while mail
                    // was being written can miss that mail in every later incremental pass.
                    let mut tries = 0;
                    let (src, dst) = loop {
                        for i in 0..4 {
                            let full = tries > 0 && i == 0;
                            let p = self.pass(&mut e, source, target, &address, full).await?;
                            if !p.again {
                                break;
                            }
                        }
                        durable(self.reach, target, &address, opts.deadline).await?;
                        // Both sides at once: this is lock time.
                        let (src, dst) = tokio::try_join!(
                            folders(self.reach, source, &address, opts.deadline),
                            folders(self.reach, target, &address, opts.deadline),
                        )?;
                        let diff = compare(&src, &dst);
                        if diff.is_empty() {
                            break (src, dst);
                        }
                        tries += 1;
                        if tries >= 3 {
                            return Err(MoveError::Verify {
                                address: address.to_string(),
                                differences: diff,
                            });
                        }
                        tracing::info!(
                            "{address}: the copy differs after the last pass ({}): copying again",
                            diff.join("; ")
                        );
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    };
                    verified = Some(dst);
                    self.journal.verified(e.id, &crate::verify::digest(&src))?;
                }
                Phase::Verified => {
                    if !holding {
                        // Nothing may be delivered to the source between its verify and the
                        // switch; the lock may have been lost with the process.
                        self.lock(&e.address).await?;
                        holding = true;
                    }
                    {
                        // The old copy stays known to the source's doveadm once its passwd
                        // entry goes (no password: no logins), for `move purge` to check and
                        // delete it.
                        let _one = self.provisioning.lock().await;
                        provision(self.reach, source, &address, opts.deadline).await?;
                    }
                    let switched = self
                        .book
                        .switch_server(&e.address, &source.name, &target.name)
                        .await;
                    if let Err(err) = switched {
                        // A killed run may have switched it already.
                        let now = self.book.show(&e.address).await.map_err(Self::dir_err)?;
                        if now.server != target.name {
                            return Err(Self::dir_err(err));
                        }
                        self.book.publish().await.map_err(Self::dir_err)?;
                    }
                    self.journal.set_phase(e.id, Phase::Switched)?;
                }
                Phase::Switched => {
                    self.book
                        .set_locked(&e.address, false)
                        .await
                        .map_err(Self::dir_err)?;
                    self.journal.lock_ends(e.id)?;
                    logins_open(self.reach, target, &address).await?;
                    self.journal.set_phase(e.id, Phase::Done)?;
                }
                Phase::Done => {
                    let done = self.journal.get(e.id)?;
                    return Ok(Moved {
                        id: e.id,
                        address: e.address.clone(),
                        from: source.name.clone(),
                        to: target.name.clone(),
                        passes: done.passes,
                        lock_ms: done.lock_ms.unwrap_or(0.0),
                        folders: verified.as_ref().map(|v| v.len()),
                        messages: verified
                            .as_ref()
                            .map(|v| v.values().map(|f| f.messages).sum())
                            .unwrap_or(e.messages),
                    });
                }
                Phase::Failed | Phase::Aborted => {
                    return Err(MoveError::Config {
                        server: source.name.clone(),
                        message: format!(
                            "move {} of {address} is {} already{}",
                            e.id,
                            e.phase,
                            if resumed { "" } else { " (not run)" }
                        ),
                    });
                }
            }
            e = self.journal.get(e.id)?;
        }
    }

    /// Stops move `id` before its switch: the account is unlocked and stays on its source.
    /// A move already switched is finished instead (its account lives on the target now).
    pub async fn abort(&self, id: i64) -> Result<Phase, MoveError> {
        let e = self.journal.claim(id)?;
        if e.phase.is_over() {
            self.journal.release(id)?;
            return Ok(e.phase);
        }
        if e.phase >= Phase::Switched {
            self.drive(id).await?;
            return Ok(Phase::Done);
        }
        if e.phase.may_hold_lock() {
            self.book
                .set_locked(&e.address, false)
                .await
                .map_err(Self::dir_err)?;
            self.journal.lock_ends(id)?;
        }
        self.journal
            .stop(id, Phase::Aborted, "aborted by the admin")?;
        if e.phase.may_hold_lock() {
            let address = Address::parse(&e.address).map_err(Self::dir_err)?;
            logins_open(self.reach, self.server(&e.source)?, &address).await?;
        }
        Ok(Phase::Aborted)
    }
}

/// Plans and runs the move of one account to `to` in a batch of its own.
pub async fn move_account(
    book: &AccountBook,
    reach: &Reach,
    journal: &Journal,
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
    let size = crate::verify::size(reach, source, address, opts.deadline).await?;
    let batch = journal.begin_batch(&format!("move {address} --to {to}"))?;
    let e = journal.plan(
        batch,
        &address.to_string(),
        &source.name,
        &target.name,
        size.messages,
        size.bytes,
    )?;
    let mover = Mover::new(book, reach, journal, opts.clone());
    let r = mover.drive(e.id).await;
    journal.end_batch(batch, None)?;
    r
}

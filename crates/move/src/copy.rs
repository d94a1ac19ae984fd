//! One copy pass of a mailbox into its target store, and making the target know the account
//! first. A pass is `doveadm backup -R` run on the target store (through its access) from the
//! source's doveadm TCP service: the target becomes identical to the source, mailbox GUIDs,
//! UIDs, UIDVALIDITY, flags, keywords and dates included. A pass given the state the previous
//! one printed copies only what changed since.

use std::time::{Duration, Instant};

use mailfleet_core::{Address, Server};
use mailfleet_remote::{Cmd, Reach};

use crate::error::MoveError;

/// What one pass did.
#[derive(Debug, Clone)]
pub struct Pass {
    /// How long it took.
    pub elapsed: Duration,
    /// The state for the next, incremental pass.
    pub state: String,
    /// doveadm's exit code 2: not fully in sync (the mailbox changed meanwhile), run again.
    pub again: bool,
}

fn config_err(server: &Server, message: impl Into<String>) -> MoveError {
    MoveError::Config {
        server: server.name.clone(),
        message: message.into(),
    }
}

/// A command that ran on `server` and exited as it should not have.
pub(crate) fn failed(server: &Server, cmd: &Cmd, out: &mailfleet_remote::Output) -> MoveError {
    MoveError::Remote(mailfleet_remote::RemoteError {
        server: server.name.clone(),
        kind: mailfleet_remote::RemoteErrorKind::Failed {
            command: cmd.display(),
            status: out.status_text(),
            stderr: out.stderr_summary(),
        },
    })
}

/// `doveadm` on `server`, with its config file when it has its own.
pub(crate) fn doveadm_argv(server: &Server, args: &[&str]) -> Vec<String> {
    let mut argv = vec!["doveadm".to_string()];
    if let Some(c) = &server.dovecot_config {
        argv.push("-c".into());
        argv.push(c.display().to_string());
    }
    argv.extend(args.iter().map(|a| (*a).to_string()));
    argv
}

/// Runs doveadm on `server` through its access; its standard output.
pub(crate) async fn run_doveadm(
    reach: &Reach,
    server: &Server,
    args: &[&str],
    deadline: Duration,
) -> Result<String, MoveError> {
    let cmd = Cmd::new(doveadm_argv(server, args)).deadline(deadline);
    Ok(reach
        .check(&server.name, &server.access, &cmd)
        .await?
        .stdout_text())
}

/// Adds the account to the target's userdb of incoming accounts (its `passwd_file` plus
/// `.incoming`), so the target's doveadm knows it before the directory says it lives there.
/// No password: logins still go to the source. Whether the file changed.
pub async fn provision(
    reach: &Reach,
    target: &Server,
    address: &Address,
    deadline: Duration,
) -> Result<bool, MoveError> {
    let file = target
        .incoming_users()
        .ok_or_else(|| config_err(target, "no passwd_file, so no incoming-users file"))?;
    let path = file.display().to_string();
    let cmd = Cmd::new(["cat", "--", path.as_str()]).deadline(deadline);
    let current = reach
        .check(&target.name, &target.access, &cmd)
        .await?
        .stdout_text();
    let prefix = format!("{address}:");
    if current.lines().any(|l| l.starts_with(&prefix)) {
        return Ok(false);
    }
    let mut next = current;
    if !next.is_empty() && !next.ends_with('\n') {
        next.push('\n');
    }
    next.push_str(&format!("{address}::::::\n"));
    let changed = mailfleet_core::routing::write_if_changed(
        reach,
        &target.name,
        &target.access,
        &file,
        &next,
    )
    .await?;
    if changed {
        known(reach, target, address).await?;
    }
    Ok(changed)
}

/// Waits until `target`'s userdb knows the account: Dovecot looks at a changed passwd-file
/// at most once a second, so a copy started at once could find no such user.
async fn known(reach: &Reach, target: &Server, address: &Address) -> Result<(), MoveError> {
    let user = address.to_string();
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let cmd = Cmd::new(doveadm_argv(target, &["user", "-u", &user]))
            .deadline(Duration::from_secs(30));
        let out = reach.run(&target.name, &target.access, &cmd).await?;
        match out.code {
            Some(0) => return Ok(()),
            // 67: no such user (yet).
            Some(67) if Instant::now() < end => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ => return Err(failed(target, &cmd, &out)),
        }
    }
}

/// One pass of `address` from `source` into `target` (`state`: empty for the first, then what
/// the previous pass returned).
///
/// The pass runs on the target and pulls from the source's doveadm service (`backup -R`):
/// the side that writes is then the local one, whose settings the command line sets, and
/// it writes without an fsync per message (`mail_fsync=never`). That is several times faster
/// than pushing into the target's doveadm service (which fsyncs each message) and is as safe
/// for a move: the source stays the account's copy until the switch, and [`durable`] flushes
/// the target's file system before its verify.
pub async fn pass(
    reach: &Reach,
    source: &Server,
    target: &Server,
    address: &Address,
    state: &str,
    deadline: Duration,
) -> Result<Pass, MoveError> {
    let port = source
        .ports
        .doveadm
        .ok_or_else(|| config_err(source, "no doveadm port (ports.doveadm)"))?;
    let origin = format!("tcp:{}:{port}", source.host);
    let user = address.to_string();
    // A pass of a killed move may still run: wait for its lock (taken on the source's side
    // of the sync) rather than copy beside it.
    let lock = deadline.as_secs().clamp(1, 300).to_string();
    let argv = doveadm_argv(
        target,
        &[
            "-o",
            "mail_fsync=never",
            "backup",
            "-R",
            "-l",
            &lock,
            "-s",
            state,
            "-u",
            &user,
            origin.as_str(),
        ],
    );
    let started = Instant::now();
    let cmd = Cmd::new(argv).deadline(deadline);
    let out = reach.run(&target.name, &target.access, &cmd).await?;
    let again = match out.code {
        Some(0) => false,
        // "Not fully synchronised": something changed during the pass; the next one catches up.
        Some(2) => true,
        _ => return Err(failed(target, &cmd, &out)),
    };
    let state = out
        .stdout_text()
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .ok_or_else(|| MoveError::Output {
            server: target.name.clone(),
            line: "(no state printed by doveadm backup -s)".into(),
        })?;
    Ok(Pass {
        elapsed: started.elapsed(),
        state,
        again,
    })
}

/// Makes what the passes wrote on `target` durable: one `syncfs` of each file system holding
/// the account's mail, indexes and control files (`sync -f`), where the passes skipped the
/// fsync of every message.
pub async fn durable(
    reach: &Reach,
    target: &Server,
    address: &Address,
    deadline: Duration,
) -> Result<(), MoveError> {
    let user = address.to_string();
    let path = |kind: &'static str| {
        let user = user.clone();
        async move {
            let args = ["mailbox", "path", "-u", user.as_str(), "-t", kind, "INBOX"];
            let out = run_doveadm(reach, target, &args, deadline).await?;
            let path = out.trim().to_string();
            if path.is_empty() {
                return Err(MoveError::Output {
                    server: target.name.clone(),
                    line: format!("(no {kind} path from doveadm mailbox path)"),
                });
            }
            Ok::<_, MoveError>(path)
        }
    };
    let (mail, index, control) = tokio::try_join!(path("mailbox"), path("index"), path("control"))?;
    let mut argv = vec!["sync".to_string(), "-f".into(), "--".into(), mail];
    for p in [index, control] {
        if !argv.contains(&p) {
            argv.push(p);
        }
    }
    let cmd = Cmd::new(argv).deadline(deadline);
    reach.check(&target.name, &target.access, &cmd).await?;
    Ok(())
}

//! One copy pass of a mailbox into its target store, and making the target know the account
//! first. A pass is `doveadm backup` run on the source store (through its access) into the
//! target's doveadm TCP service: the target becomes identical to the source, mailbox GUIDs,
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
pub async fn pass(
    reach: &Reach,
    source: &Server,
    target: &Server,
    address: &Address,
    state: &str,
    deadline: Duration,
) -> Result<Pass, MoveError> {
    let port = target
        .ports
        .doveadm
        .ok_or_else(|| config_err(target, "no doveadm port (ports.doveadm)"))?;
    let destination = format!("tcp:{}:{port}", target.host);
    let user = address.to_string();
    // A pass of a killed move may still run on the source: wait for its lock rather than
    // copy beside it.
    let lock = deadline.as_secs().clamp(1, 300).to_string();
    let argv = doveadm_argv(
        source,
        &[
            "backup",
            "-l",
            &lock,
            "-s",
            state,
            "-u",
            &user,
            destination.as_str(),
        ],
    );
    let started = Instant::now();
    let cmd = Cmd::new(argv).deadline(deadline);
    let out = reach.run(&source.name, &source.access, &cmd).await?;
    let again = match out.code {
        Some(0) => false,
        // "Not fully synchronised": something changed during the pass; the next one catches up.
        Some(2) => true,
        _ => return Err(failed(source, &cmd, &out)),
    };
    let state = out
        .stdout_text()
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .ok_or_else(|| MoveError::Output {
            server: source.name.clone(),
            line: "(no state printed by doveadm backup -s)".into(),
        })?;
    Ok(Pass {
        elapsed: started.elapsed(),
        state,
        again,
    })
}

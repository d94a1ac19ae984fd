//! The audit log at the command line: which commands are actions (they change something on
//! the fleet or in its state), each recorded with the Unix user and where it ran from before
//! it is taken and with its result after; and `mailfleet audit log`.

use std::process::ExitCode;

use clap::ArgMatches;
use mailfleet_core::audit::{Actor, AuditLog};

use super::{Context, print_json};

/// The command path (`accounts lock`) of the parsed command line when it is an action:
/// `--plan`, `--dry-run` and a password audit without `--block` change nothing.
pub(crate) fn action_of(m: &ArgMatches) -> Option<String> {
    let mut path = Vec::new();
    let mut leaf = m;
    while let Some((name, sub)) = leaf.subcommand() {
        path.push(name);
        leaf = sub;
    }
    let flag = |id: &str| {
        leaf.try_get_one::<bool>(id)
            .ok()
            .flatten()
            .copied()
            .unwrap_or(false)
    };
    let acts = match path.as_slice() {
        [
            "accounts",
            "add" | "remove" | "set-server" | "lock" | "unlock" | "block" | "unblock" | "import",
        ] => true,
        [
            "policy",
            "reset" | "release" | "purge" | "block" | "unblock",
        ] => true,
        ["backup", "run"] | ["restore"] | ["exec"] => true,
        ["backup", "forget" | "prune"] => !flag("dry_run"),
        ["audit", "passwords"] => flag("block"),
        ["move"] | ["move", "drain" | "back"] => !flag("plan"),
        ["move", "resume" | "abort" | "purge"] => true,
        [
            "upgrade",
            "run" | "resume" | "abort" | "mark" | "unmark" | "notify",
        ] => true,
        _ => false,
    };
    acts.then(|| path.join(" "))
}

/// The Unix user running this command (and who became root through sudo), and from where:
/// this machine, the SSH client's address, the terminal.
fn actor() -> Actor {
    let uid = nix::unistd::getuid();
    let name = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| format!("uid {uid}"), |u| u.name);
    let who = match std::env::var("SUDO_USER") {
        Ok(by) if uid.is_root() && !by.is_empty() => format!("{name} (sudo by {by})"),
        _ => name,
    };
    let mut from = vec![
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "this machine".into()),
    ];
    if let Some(client) = std::env::var("SSH_CONNECTION")
        .ok()
        .and_then(|c| c.split_whitespace().next().map(String::from))
    {
        from.push(format!("ssh from {client}"));
    }
    if let Ok(tty) = std::fs::read_link("/proc/self/fd/0")
        && tty.starts_with("/dev/pts")
    {
        from.push(tty.display().to_string());
    }
    Actor {
        who,
        via: "cli".into(),
        from: from.join(", "),
    }
}

/// How an action ended, as the log says it.
fn result(r: &anyhow::Result<ExitCode>) -> String {
    match r {
        Ok(code) => match (0..=255u8).find(|n| ExitCode::from(*n) == *code) {
            Some(0) => "ok".into(),
            Some(n) => format!("exit {n}"),
            None => "exit ?".into(),
        },
        Err(e) => format!("error (exit {}): {e}", super::exit_code(e)),
    }
}

/// The record of the action this process takes, once it began.
static RECORD: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The audit record of this process's action, if it takes one: a run handed to the daemon
/// takes it along, and the daemon writes the run's result into it.
pub(crate) fn record() -> Option<&'static str> {
    RECORD.get().map(String::as_str)
}

/// Runs `command` (the action `action`) with its begin and end in the audit log of the
/// config's data directory. An action whose record cannot be written is not taken.
pub(crate) async fn recorded(
    ctx: &Context,
    action: &str,
    command: impl std::future::Future<Output = anyhow::Result<ExitCode>>,
) -> anyhow::Result<ExitCode> {
    // Without a valid config the command stops before it acts, and says why itself.
    let Ok(config) = ctx.load() else {
        return command.await;
    };
    let log = AuditLog::new(&config.data_dir);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let id = log
        .begin(&actor(), action, &args)
        .map_err(|e| anyhow::anyhow!("{e}: `{action}` is not taken without its audit record"))?;
    // One action a process: set once.
    let _ = RECORD.set(id.clone());
    let r = command.await;
    if let Err(e) = log.end(&id, &result(&r)) {
        eprintln!("mailfleet: the result of `{action}` is not in the audit log: {e}");
    }
    r
}

/// `mailfleet audit log [--since ...]`: every action recorded, oldest first.
pub(crate) fn print(ctx: &Context, since: Option<&str>) -> anyhow::Result<ExitCode> {
    let config = ctx.load()?;
    let since = since
        .map(|s| super::stats::since(s, chrono::Utc::now()))
        .transpose()?;
    let read = AuditLog::new(&config.data_dir).read(since)?;
    for (line, why) in &read.damaged {
        eprintln!(
            "mailfleet: {} line {line} left out: {why}",
            AuditLog::new(&config.data_dir).path().display()
        );
    }
    if ctx.json {
        print_json(&read)?;
        return Ok(ExitCode::SUCCESS);
    }
    for a in &read.actions {
        let took = a
            .ended
            .map(|e| {
                format!(
                    " ({:.1} s)",
                    (e - a.time).num_milliseconds() as f64 / 1000.0
                )
            })
            .unwrap_or_default();
        println!(
            "{}  {} via {} from {}  {}  {}{took}",
            a.time.format("%Y-%m-%d %H:%M:%S"),
            a.actor.who,
            a.actor.via,
            a.actor.from,
            a.args.join(" "),
            a.result
                .as_deref()
                .unwrap_or("no result (still running, or its process was killed)"),
        );
    }
    Ok(ExitCode::SUCCESS)
}

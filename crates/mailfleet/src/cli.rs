//! The command line: global flags, the command tree and dispatch.

mod accounts;
mod accounts_print;
mod audit;
mod audit_log;
mod backup;
mod backup_now;
mod backup_print;
mod check;
mod config;
mod demo;
mod exec;
mod exit;
mod monitor;
mod move_print;
mod mover;
mod policy;
mod policy_print;
mod probe;
mod progress;
mod report;
mod restore;
mod serve;
mod serve_ops;
mod serve_ops_runs;
mod serve_runs;
mod stats;
mod upgrade;
mod upgrade_hooks;
mod upgrade_notify;
mod upgrade_print;
mod upgrade_progress;
mod upgrade_run;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mailfleet_core::Config;

/// Keeps a fleet of mail servers both patched and up.
#[derive(Debug, Parser)]
#[command(name = "mailfleet", version, about)]
pub(crate) struct Cli {
    /// Config file [default: $MAILFLEET_CONFIG, else ./mailfleet.toml]
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Print JSON for scripts instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// More log output on stderr (-v info, -vv debug; or set MAILFLEET_LOG).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write or check mailfleet.toml.
    #[command(subcommand)]
    Config(config::ConfigCmd),
    /// The account directory: where each mailbox lives, its status and password hash.
    #[command(subcommand)]
    Accounts(accounts::AccountsCmd),
    /// A real mail stack on loopback (Postfix, two Dovecot stores, slapd, Redis).
    #[command(subcommand)]
    Demo(demo::DemoCmd),
    /// Totals, machine and user profiles, the spam funnel and anomalies from mail logs.
    Report(report::ReportCmd),
    /// One round of deep checks (log in, fetch, deliver end to end); exit code as plugins use.
    Probe(probe::ProbeCmd),
    /// Probe rounds on a schedule: alarms by log, mail and webhook, restarts, /metrics.
    Monitor(monitor::MonitorCmd),
    /// Checklists: `check shift` for the start of a shift.
    #[command(subcommand)]
    Check(check::CheckCmd),
    /// The monitor's history: CSV export per check family.
    #[command(subcommand)]
    Stats(stats::StatsCmd),
    /// Incremental, deduplicated backups of the mailbox stores.
    #[command(subcommand)]
    Backup(backup::BackupCmd),
    /// Restore accounts, folders or single messages from a backup snapshot.
    Restore(restore::RestoreCmd),
    /// Outbound abuse control: the Postfix policy server and milter, quotas, held mail, blocks.
    #[command(subcommand)]
    Policy(policy::PolicyCmd),
    /// Audits: `audit passwords` finds guessable passwords; `audit log` lists every action
    /// taken (who, what, when, from where, the result).
    #[command(subcommand)]
    Audit(audit::AuditCmd),
    /// Run a command on servers through their access (ssh or local), in parallel; each line
    /// prefixed with its server, the exit code the worst of theirs (255: did not run).
    Exec(exec::ExecCmd),
    /// Move mailboxes to another store: copied while users work, locked for seconds,
    /// verified on both sides, then switched in the directory and routing.
    Move(mover::MoveCmd),
    /// Rolling upgrades: the plan (role order, groups, canaries, spacing, windows), and the
    /// servers marked for upgrade and not yet upgraded (moves avoid marked stores).
    #[command(subcommand)]
    Upgrade(upgrade::UpgradeCmd),
    /// One daemon: the parts `[serve] parts` names (the monitor with /metrics, the policy
    /// server, the web dashboard) under one shutdown; SIGHUP reloads the config, refusing one
    /// with a mistake.
    Serve {
        #[command(subcommand)]
        cmd: Option<serve::ServeCmd>,
    },
}

/// What every command gets: where the config is and how to print.
pub(crate) struct Context {
    config_path: PathBuf,
    json: bool,
}

impl Context {
    /// Loads and validates the config; every command that acts on the fleet starts here.
    fn load(&self) -> anyhow::Result<Config> {
        Ok(Config::load(&self.config_path)?)
    }

    /// Validates the config if there is one: for commands that can work without it.
    fn load_if_present(&self) -> anyhow::Result<Option<Config>> {
        match Config::load(&self.config_path) {
            Ok(c) => Ok(Some(c)),
            Err(mailfleet_core::config::ConfigError::Missing { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn config_path(&self) -> &Path {
        &self.config_path
    }
}

/// Runs the parsed command line; `matches` say whether it is an action for the audit log.
pub(crate) async fn run(cli: Cli, matches: &clap::ArgMatches) -> anyhow::Result<ExitCode> {
    let ctx = Context {
        config_path: Config::locate(cli.config.as_deref()),
        json: cli.json,
    };
    match audit_log::action_of(matches) {
        Some(action) => audit_log::recorded(&ctx, &action, dispatch(cli.command, &ctx)).await,
        None => dispatch(cli.command, &ctx).await,
    }
}

async fn dispatch(command: Command, ctx: &Context) -> anyhow::Result<ExitCode> {
    match command {
        Command::Config(c) => config::run(c, ctx),
        Command::Accounts(c) => accounts::run(c, ctx).await,
        Command::Demo(c) => demo::run(c, ctx).await,
        Command::Report(c) => report::run(c, ctx).await,
        Command::Probe(c) => plugin(probe::run(c, ctx).await),
        Command::Monitor(c) => monitor::run(c, ctx).await,
        Command::Stats(c) => stats::run(c, ctx),
        Command::Check(c) => plugin(check::run(c, ctx).await),
        Command::Backup(c) => backup::run(c, ctx).await,
        Command::Restore(c) => restore::restore(c, ctx).await,
        Command::Policy(c) => policy::run(c, ctx).await,
        Command::Audit(c) => audit::run(c, ctx).await,
        Command::Exec(c) => exec::run(c, ctx).await,
        Command::Move(c) => mover::run(c, ctx).await,
        Command::Upgrade(c) => upgrade::run(c, ctx).await,
        Command::Serve { cmd } => serve::run(cmd, ctx).await,
    }
}

/// For the commands that monitoring systems run as plugins: an error that stopped the
/// command (a config mistake, an unknown server) is UNKNOWN, not a code plugins read as a
/// state of the fleet.
fn plugin(r: anyhow::Result<ExitCode>) -> anyhow::Result<ExitCode> {
    r.or_else(|e| {
        eprintln!("mailfleet: UNKNOWN: {e}");
        for cause in e.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
        Ok(ExitCode::from(mailfleet_probe::State::Unknown.exit_code()))
    })
}

/// The exit code of a command that stopped with this error (see [`exit`]).
impl Cli {
    /// What the process sets before its threads start: the daemon (`serve` without a
    /// subcommand) limits the allocator's arenas.
    pub(crate) fn before_threads(&self) {
        if matches!(self.command, Command::Serve { cmd: None }) {
            serve::fewer_arenas();
        }
    }
}

pub(crate) fn exit_code(e: &anyhow::Error) -> u8 {
    exit::of_error(e)
}

/// Prints a value as pretty JSON on stdout.
fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

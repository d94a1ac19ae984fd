//! `mailfleet upgrade plan`: the order, gates and timeline of a rolling upgrade; and
//! `upgrade mark|unmark|marks`: servers marked for upgrade and not yet upgraded (moves place
//! no mailbox on a marked store); `upgrade notify` in `upgrade_notify`.

use std::process::ExitCode;

use clap::Subcommand;
use mailfleet_core::upgrade_marks::UpgradeMarks;
use mailfleet_upgrade::holds::Format;

use super::{Context, exit, print_json};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum HoldFormat {
    Apt,
    Dnf,
    Yum,
}

impl From<HoldFormat> for Format {
    fn from(f: HoldFormat) -> Format {
        match f {
            HoldFormat::Apt => Format::Apt,
            HoldFormat::Dnf => Format::Dnf,
            HoldFormat::Yum => Format::Yum,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum UpgradeCmd {
    /// Print the upgrade order: each server's place and why, the gates it waits on, when it
    /// starts at the earliest (spacing, canary soak, maintenance windows).
    Plan {
        /// Only these servers (default: the whole fleet).
        #[arg(long, value_delimiter = ',')]
        servers: Vec<String>,
        /// Only these packages (default: every update offered).
        #[arg(long, value_delimiter = ',')]
        packages: Vec<String>,
    },
    /// Run the plan: server by server, gates before and after, stores drained and backed up,
    /// the package manager through each server's access; halts at a failed gate.
    Run {
        /// Only these servers (default: the whole fleet).
        #[arg(long, value_delimiter = ',')]
        servers: Vec<String>,
        /// Only these packages (default: every update offered).
        #[arg(long, value_delimiter = ',')]
        packages: Vec<String>,
    },
    /// The latest run (or RUN): each server's phase, what it printed, where it halted.
    Status { run: Option<i64> },
    /// Continue the open run from its recorded phases (after a halt or a crash).
    Resume,
    /// Stop the open run after its current step.
    Abort,
    /// Write the holds that keep the packages the fleet patches itself ([upgrade] managed) out
    /// of the OS's automatic updates, and each server's staggered automatic reboot time.
    Holds {
        /// Whose syntax: unattended-upgrades (apt), dnf-automatic (dnf) or yum-cron (yum).
        #[arg(long, value_enum, default_value = "apt")]
        format: HoldFormat,
        /// Instead, run the package manager's simulation on each server and report what would
        /// slip past the holds (exit 1: a package depending on a held one would upgrade).
        #[arg(long)]
        check: bool,
        /// With --check: only these servers.
        #[arg(long, value_delimiter = ',')]
        servers: Vec<String>,
    },
    /// Mark servers as to be upgraded: no move places a mailbox on them until unmarked.
    Mark {
        #[arg(required = true)]
        servers: Vec<String>,
        /// Why (shown in move plans and `upgrade marks`).
        #[arg(long, default_value = "marked by the admin")]
        reason: String,
    },
    /// Clear the marks of servers that are upgraded (or no longer will be).
    Unmark {
        #[arg(required = true)]
        servers: Vec<String>,
    },
    /// List the marked servers.
    Marks,
    /// Mail each account of the stores to be updated its store's window, and a reminder once
    /// the window is less than a day away; run it again (hourly from cron): each mail goes once.
    Notify {
        /// Only these servers (default: the whole fleet).
        #[arg(long, value_delimiter = ',')]
        servers: Vec<String>,
        /// As if it were this time (RFC 3339, e.g. 2026-12-05T01:00:00Z).
        #[arg(long)]
        at: Option<chrono::DateTime<chrono::Utc>>,
    },
}

pub(crate) async fn run(cmd: UpgradeCmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    let config = ctx.load()?;
    if let Some(code) = super::upgrade_run::run_cmd(&cmd, &config, ctx).await? {
        return Ok(code);
    }
    if let UpgradeCmd::Notify { servers, at } = cmd {
        return super::upgrade_notify::notify(&config, ctx, servers, at).await;
    }
    if let UpgradeCmd::Plan { servers, packages } = cmd {
        let plan = mailfleet_upgrade::command::plan(&config, servers, packages, chrono::Utc::now())
            .await
            .map_err(|e| match e {
                mailfleet_upgrade::PlanError::UnknownServer(_) => exit::Usage(e.to_string()).into(),
                e => anyhow::Error::from(e),
            })?;
        if ctx.json {
            print_json(&plan)?;
        } else {
            super::upgrade_print::plan(&plan);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let UpgradeCmd::Holds {
        check: true,
        servers,
        ..
    } = &cmd
    {
        let checked = mailfleet_upgrade::command::check(&config, servers)
            .await
            .map_err(|e| exit::Usage(e.to_string()))?;
        if ctx.json {
            print_json(&checked)?;
        } else {
            super::upgrade_print::checked(&checked);
        }
        return Ok(ExitCode::from(mailfleet_upgrade::check::exit_code(
            &checked,
        )));
    }
    if let UpgradeCmd::Holds { format, .. } = cmd {
        let holds = mailfleet_upgrade::command::holds(&config, format.into());
        if ctx.json {
            print_json(&holds)?;
        } else {
            super::upgrade_print::holds(&holds);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let marks = UpgradeMarks::open(&config.data_dir)?;
    let known = |servers: &[String]| match servers
        .iter()
        .find(|s| config.fleet.server(s.as_str()).is_none())
    {
        Some(s) => Err(exit::Usage(format!("{s}: no such server in the config"))),
        None => Ok(()),
    };
    match cmd {
        UpgradeCmd::Mark { servers, reason } => {
            known(&servers)?;
            for s in &servers {
                marks.mark(s, &reason)?;
            }
        }
        UpgradeCmd::Unmark { servers } => {
            known(&servers)?;
            for s in &servers {
                if !marks.clear(s)? && !ctx.json {
                    println!("{s}: was not marked");
                }
            }
        }
        _ => {}
    }
    let all = marks.list()?;
    if ctx.json {
        print_json(&all)?;
    } else if all.is_empty() {
        println!("no server marked for upgrade");
    } else {
        for m in &all {
            let since = chrono::DateTime::from_timestamp(m.since, 0)
                .map_or_else(|| m.since.to_string(), |t| t.to_rfc3339());
            println!("{:<16} since {since}  {}", m.server, m.reason);
        }
    }
    Ok(ExitCode::SUCCESS)
}

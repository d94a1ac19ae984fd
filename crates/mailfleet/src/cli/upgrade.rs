//! `mailfleet upgrade mark|unmark|marks`: servers marked for upgrade and not yet upgraded;
//! moves place no mailbox on a marked store.

use std::process::ExitCode;

use clap::Subcommand;
use mailfleet_core::upgrade_marks::UpgradeMarks;

use super::{Context, exit, print_json};

#[derive(Debug, Subcommand)]
pub(crate) enum UpgradeCmd {
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
}

pub(crate) fn run(cmd: UpgradeCmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    let config = ctx.load()?;
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
        UpgradeCmd::Marks => {}
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

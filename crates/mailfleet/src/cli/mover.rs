//! `mailfleet move`: accounts copied live, locked for seconds, verified, switched (`ADDRESS...`,
//! `--domain`, `--from`, `--to`, `--plan`); `move drain STORE` and `move back STORE`;
//! `move status`, `move resume`, `move abort`, `move purge`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use mailfleet_move::Request;
use mailfleet_move::command::{self, Overrides};

use super::move_print::{self, Bar};
use super::{Context, exit, print_json};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct MoveCmd {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    start: Start,
}

#[derive(Debug, Args)]
struct Start {
    /// Accounts to move.
    accounts: Vec<String>,
    /// Every account of this domain (repeatable).
    #[arg(long = "domain", value_name = "DOMAIN")]
    domains: Vec<String>,
    /// Every account on this store: drain it (repeatable).
    #[arg(long = "from", value_name = "STORE")]
    from: Vec<String>,
    /// The store they go to; without it, each goes where the stores' weights and free space say.
    #[arg(long, value_name = "STORE")]
    to: Option<String>,
    /// Print what would go where and why; move nothing.
    #[arg(long)]
    plan: bool,
    #[command(flatten)]
    tuning: Tuning,
}

#[derive(Debug, Args)]
struct Tuning {
    /// Copy before the lock until a pass takes at most this long (like 5s; default `[move]
    /// lock_budget`).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    lock_budget: Option<Duration>,
    /// Accounts moved at once (default `[move] parallel`).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    parallel: Option<u16>,
}

impl Tuning {
    fn overrides(&self) -> Overrides {
        Overrides {
            lock_budget: self.lock_budget,
            parallel: self.parallel.map(usize::from),
        }
    }

    fn handed(&self) -> mailfleet_serve::runs::Tuning {
        mailfleet_serve::runs::Tuning {
            lock_budget_secs: self.lock_budget.map(|d| d.as_secs_f64()),
            parallel: self.parallel,
        }
    }
}

/// Hands `job` to the daemon when one runs jobs: its end printed, from the journal for
/// people; `None` when there is no daemon to hand it to.
async fn in_daemon(
    config: &mailfleet_core::Config,
    ctx: &Context,
    job: mailfleet_serve::runs::Job,
) -> anyhow::Result<Option<ExitCode>> {
    let Some(ended) = super::serve_runs::handed(config, &job).await? else {
        return Ok(None);
    };
    if ctx.json {
        print_json(&ended.output)?;
    } else {
        move_print::status(&command::status(config, false)?);
        println!("{}", ended.summary);
    }
    Ok(Some(exit::code(ended.code)))
}

fn duration(s: &str) -> Result<Duration, String> {
    mailfleet_core::config::parse_duration(s)
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Every move of the latest batch and every move not over: phase, passes, size, rate,
    /// lock time, and the batch's time left.
    Status {
        /// Every batch ever run.
        #[arg(long)]
        all: bool,
    },
    /// Continue every move a killed or failed run left open, each from its recorded phase.
    Resume {
        #[command(flatten)]
        tuning: Tuning,
    },
    /// Stop open moves before their switch: each account is unlocked and stays on its
    /// source (a move already switched is finished instead).
    Abort {
        /// The accounts whose moves stop (every open move when none is given).
        accounts: Vec<String>,
    },
    /// Delete the old copies moves left on their sources once older than `[move]
    /// keep_old_copy`, each after checking nothing wrote to it since the switch.
    Purge {
        /// Only these accounts' old copies.
        accounts: Vec<String>,
        /// Old copies switched at least this long ago (like 7d; default `[move] keep_old_copy`).
        #[arg(long, value_name = "DURATION", value_parser = duration)]
        older_than: Option<Duration>,
    },
    /// Move every account off a store, placed by the other stores' weights and free space.
    Drain {
        /// The store to empty.
        store: String,
        /// Print what would go where and why; move nothing.
        #[arg(long)]
        plan: bool,
        #[command(flatten)]
        tuning: Tuning,
    },
    /// Move back to a store every account a drain of it took away.
    Back {
        /// The store the accounts return to.
        store: String,
        /// Print what would go where and why; move nothing.
        #[arg(long)]
        plan: bool,
        #[command(flatten)]
        tuning: Tuning,
    },
}

pub(crate) async fn run(cmd: MoveCmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    let config = ctx.load()?;
    let (request, only_plan, tuning, what) = match cmd.action {
        Some(Action::Status { all }) => {
            let status = command::status(&config, all)?;
            if ctx.json {
                print_json(&status)?;
            } else {
                move_print::status(&status);
            }
            return Ok(exit::code(exit::OK));
        }
        Some(Action::Resume { tuning }) => {
            let job = mailfleet_serve::runs::Job::MoveResume {
                tuning: tuning.handed(),
            };
            if let Some(code) = in_daemon(&config, ctx, job).await? {
                return Ok(code);
            }
            let bar = Bar::new(!ctx.json);
            let report = command::resume(&config, &tuning.overrides(), &bar).await?;
            bar.finish();
            return report_out(ctx, None, Some(&report));
        }
        Some(Action::Abort { accounts }) => {
            let aborted = command::abort(&config, &accounts).await?;
            if ctx.json {
                print_json(&aborted)?;
            } else {
                move_print::aborted(&aborted);
            }
            let failed = aborted.iter().any(|a| a.error.is_some());
            return Ok(exit::code(if failed { exit::FAILED } else { exit::OK }));
        }
        Some(Action::Purge {
            accounts,
            older_than,
        }) => {
            let purged = mailfleet_move::purge::purge(&config, &accounts, older_than).await?;
            if ctx.json {
                print_json(&purged)?;
            } else {
                move_print::purged(&purged);
            }
            let kept = purged.iter().any(|p| !p.deleted);
            return Ok(exit::code(if kept { exit::PROBLEM } else { exit::OK }));
        }
        Some(Action::Drain {
            store,
            plan,
            tuning,
        }) => (
            Request {
                from: vec![store.clone()],
                ..Request::default()
            },
            plan,
            tuning,
            format!("move drain {store}"),
        ),
        Some(Action::Back {
            store,
            plan,
            tuning,
        }) => (
            command::back_request(&config, &store).await?,
            plan,
            tuning,
            format!("move back {store}"),
        ),
        None => {
            let s = cmd.start;
            let request = Request {
                accounts: s.accounts,
                domains: s.domains,
                from: s.from,
                to: s.to,
                keep: Vec::new(),
            };
            if let Some(problem) = request.problem() {
                return Err(exit::Usage(problem.into()).into());
            }
            let what = request.describe();
            (request, s.plan, s.tuning, what)
        }
    };
    if !only_plan {
        let job = mailfleet_serve::runs::Job::Move {
            accounts: request.accounts.clone(),
            domains: request.domains.clone(),
            from: request.from.clone(),
            to: request.to.clone(),
            what: what.clone(),
            tuning: tuning.handed(),
        };
        if let Some(code) = in_daemon(&config, ctx, job).await? {
            return Ok(code);
        }
    }
    let bar = Bar::new(!ctx.json && !only_plan);
    let started = command::start(
        &config,
        &request,
        &what,
        only_plan,
        &tuning.overrides(),
        &bar,
    )
    .await?;
    bar.finish();
    for n in &started.notices {
        eprintln!("mailfleet: not sent: {n}");
    }
    if !started.plan.refused.is_empty() {
        if ctx.json {
            print_json(&started)?;
        } else {
            move_print::plan(&started.plan);
            eprintln!("mailfleet: the plan is refused: nothing was moved");
        }
        return Ok(exit::code(exit::FAILED));
    }
    if only_plan || started.report.is_none() {
        if ctx.json {
            print_json(&started)?;
        } else {
            move_print::plan(&started.plan);
        }
        return Ok(exit::code(exit::OK));
    }
    report_out(ctx, Some(&started), started.report.as_ref())
}

fn report_out(
    ctx: &Context,
    started: Option<&command::Started>,
    report: Option<&mailfleet_move::BatchReport>,
) -> anyhow::Result<ExitCode> {
    let Some(report) = report else {
        return Ok(exit::code(exit::OK));
    };
    if ctx.json {
        match started {
            Some(s) => print_json(s)?,
            None => print_json(report)?,
        }
    } else {
        move_print::report(report);
    }
    let failed = report.failed() > 0 || report.stopped.is_some();
    Ok(exit::code(if failed { exit::FAILED } else { exit::OK }))
}

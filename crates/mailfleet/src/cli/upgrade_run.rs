//! `mailfleet upgrade run|status|resume|abort`: the runner wired to the other capabilities,
//! called, and its record printed.

use std::process::ExitCode;

use super::upgrade::UpgradeCmd;
use super::{Context, exit, print_json};

/// `upgrade run|status|resume|abort`; `None` for the other subcommands.
pub(crate) async fn run_cmd(
    cmd: &UpgradeCmd,
    config: &mailfleet_core::Config,
    ctx: &Context,
) -> anyhow::Result<Option<ExitCode>> {
    use mailfleet_upgrade::journal::Journal;
    use mailfleet_upgrade::run::{RunError, Runner};
    let journal = Journal::open(&config.data_dir)?;
    let reach = mailfleet_remote::Reach::new();
    let hooks = super::upgrade_hooks::Wired { config, halt: None };
    let runner = Runner {
        config,
        reach: &reach,
        journal: &journal,
        hooks: &hooks,
    };
    let open = || -> anyhow::Result<i64> {
        journal
            .open_run()?
            .ok_or_else(|| exit::Usage("no upgrade run is open".into()).into())
    };
    let show = !ctx.json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    use super::upgrade_progress::shown;
    let handed = match cmd {
        UpgradeCmd::Run { servers, packages } => Some(mailfleet_serve::runs::Job::UpgradeRun {
            servers: servers.clone(),
            packages: packages.clone(),
        }),
        UpgradeCmd::Resume => Some(mailfleet_serve::runs::Job::UpgradeResume),
        _ => None,
    };
    if let Some(job) = handed {
        let ended = shown(
            &config.data_dir,
            show,
            super::serve_runs::handed(config, &job),
        )
        .await?;
        if let Some(ended) = ended {
            if ended.code != 0 && ended.upgrade_run.is_some() {
                eprintln!("mailfleet: {}", ended.summary);
            }
            match ended.upgrade_run {
                Some(id) if !ctx.json => super::upgrade_print::run(&journal.get(id)?),
                Some(_) => print_json(&ended.output)?,
                None => eprintln!("mailfleet: {}", ended.summary),
            }
            return Ok(Some(ExitCode::from(ended.code)));
        }
    }
    let result = match cmd {
        UpgradeCmd::Run { servers, packages } => {
            shown(
                &config.data_dir,
                show,
                runner.start(servers.clone(), packages.clone()),
            )
            .await
        }
        UpgradeCmd::Resume => {
            let id = open()?;
            shown(&config.data_dir, show, runner.drive(id)).await
        }
        UpgradeCmd::Abort => runner.abort(open()?).await,
        UpgradeCmd::Status { run } => {
            let id = match run.or(journal.latest()?) {
                Some(id) => id,
                None if ctx.json => {
                    println!("null");
                    return Ok(Some(ExitCode::SUCCESS));
                }
                None => {
                    println!("no upgrade run yet");
                    return Ok(Some(ExitCode::SUCCESS));
                }
            };
            Ok(journal.get(id)?)
        }
        _ => return Ok(None),
    };
    let (record, code) = match result {
        Ok(r) => (r, 0),
        Err(RunError::Halted { id, server, why }) => {
            eprintln!("mailfleet: upgrade run {id} HALTED at {server}: {why}");
            (journal.get(id)?, 1)
        }
        Err(RunError::Plan(e @ mailfleet_upgrade::PlanError::UnknownServer(_))) => {
            return Err(exit::Usage(e.to_string()).into());
        }
        Err(e) => return Err(e.into()),
    };
    if ctx.json {
        print_json(&record)?;
    } else {
        super::upgrade_print::run(&record);
    }
    let code = if record.state == "halted" { 1 } else { code };
    Ok(Some(ExitCode::from(code)))
}

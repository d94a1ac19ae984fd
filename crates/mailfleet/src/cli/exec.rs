//! `mailfleet exec`: one command on servers of the fleet through their access, in parallel,
//! each output line prefixed with its server; the exit code is the worst of theirs.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use clap::Args;
use mailfleet_core::Role;
use mailfleet_remote::fanout::{self, Target};
use mailfleet_remote::{Cmd, Reach, Stream};

use super::{Context, exit};

#[derive(Debug, Args)]
pub(crate) struct ExecCmd {
    /// Servers to run on (with --role and --group: all of them together).
    servers: Vec<String>,
    /// Every server with this role (repeatable).
    #[arg(long, value_name = "ROLE")]
    role: Vec<Role>,
    /// Every server of this redundancy group (repeatable).
    #[arg(long, value_name = "GROUP")]
    group: Vec<String>,
    /// How many servers run it at once.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    parallel: u16,
    /// Seconds each server has to finish it, connecting included.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// The command and its arguments, after `--`: passed as they are, never through a shell
    /// of ours (run `sh -c '...'` explicitly for shell syntax).
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

/// One output line, for `--json`.
#[derive(serde::Serialize)]
struct Line {
    server: String,
    stream: &'static str,
    line: String,
}

pub(crate) async fn run(cmd: ExecCmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    let config = ctx.load()?;
    if cmd.servers.is_empty() && cmd.role.is_empty() && cmd.group.is_empty() {
        return Err(exit::Usage("name servers, or give --role or --group".into()).into());
    }
    let targets: Vec<Target> = config
        .fleet
        .select(&cmd.servers, &cmd.role, &cmd.group)
        .map_err(exit::Usage)?
        .into_iter()
        .map(|s| Target {
            name: s.name.clone(),
            access: s.access.clone(),
        })
        .collect();
    let width = targets.iter().map(|t| t.name.len()).max().unwrap_or(0);
    let run = Cmd::new(cmd.command.iter().cloned()).deadline(Duration::from_secs(cmd.timeout));
    let lines: Mutex<Vec<Line>> = Mutex::new(Vec::new());
    let json = ctx.json;
    let runs = fanout::run_all(
        &Reach::new(),
        &targets,
        &run,
        cmd.parallel.into(),
        |server, stream, bytes| {
            let text = String::from_utf8_lossy(bytes);
            if json {
                // A poisoned lock only means another line's push panicked; the list is whole.
                lines
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(Line {
                        server: server.into(),
                        stream: if stream == Stream::Stdout {
                            "stdout"
                        } else {
                            "stderr"
                        },
                        line: text.into_owned(),
                    });
            } else if stream == Stream::Stdout {
                let _ = writeln!(std::io::stdout().lock(), "{server:width$}: {text}");
            } else {
                let _ = writeln!(std::io::stderr().lock(), "{server:width$}! {text}");
            }
        },
    )
    .await;
    let worst = runs.iter().map(|r| r.effective_code()).max().unwrap_or(0);
    if json {
        super::print_json(&serde_json::json!({
            "runs": runs,
            "lines": lines.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner),
            "exit_code": worst,
        }))?;
    } else {
        for r in &runs {
            let how = match (&r.error, r.code) {
                (Some(e), _) => e.clone(),
                (None, Some(c)) => format!("exit {c}"),
                (None, None) => "killed by a signal".into(),
            };
            eprintln!("{:width$}  {how} ({:.2} s)", r.server, r.secs);
        }
    }
    Ok(ExitCode::from(
        u8::try_from(worst.clamp(0, 255)).unwrap_or(u8::MAX),
    ))
}

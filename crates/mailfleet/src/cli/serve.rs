//! `mailfleet serve`: the daemon's parts wired to their libraries (the serve crate depends on
//! none of them): the monitor's rounds with its alarms and `/metrics` (each round put on the
//! dashboard's board), the policy server with its milter, release loop and log follower,
//! scheduled backups, moves and upgrades run for the dashboard and the command line (see
//! `serve_runs`), and the dashboard; `serve hash-password` makes an operator's hash.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use mailfleet_core::config::ServePart;
use mailfleet_serve::Part;
use mailfleet_serve::board::{Board, Row};
use mailfleet_serve::runs::Runs;
use mailfleet_serve::web::auth::Gate;

use super::{Context, exit};

#[derive(Debug, Subcommand)]
pub(crate) enum ServeCmd {
    /// Print the Argon2 hash of the password in FILE (or on stdin) for `[[serve.operators]]`.
    HashPassword {
        /// The file holding the password (its first line); stdin if not given.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
}

fn parts(board: Arc<Board>, gate: Arc<Gate>, runs: Arc<Runs>) -> Vec<Part> {
    let monitor_board = board.clone();
    vec![
        Part {
            part: ServePart::Monitor,
            run: Arc::new(move |config, shutdown| {
                let board = monitor_board.clone();
                Box::pin(async move {
                    let options = mailfleet_probe::monitor::MonitorOptions {
                        rounds: None,
                        interval: config.monitor.interval,
                    };
                    let each = move |r: &mailfleet_probe::monitor::RoundReport| {
                        let rows = r
                            .outcomes
                            .iter()
                            .map(|o| Row {
                                server: o.server.clone(),
                                check: o.check.clone(),
                                state: o.state.to_string(),
                                message: o.message.clone(),
                                elapsed_ms: o.elapsed_ms,
                            })
                            .collect();
                        board.set_round(r.number, rows);
                    };
                    mailfleet_probe::monitor::run(config, options, shutdown, each)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
            }),
        },
        Part {
            part: ServePart::Policy,
            run: Arc::new(|config, shutdown| {
                Box::pin(async move {
                    mailfleet_policy::service::serve(&config, shutdown)
                        .await
                        .map_err(|e| e.to_string())
                })
            }),
        },
        Part {
            part: ServePart::Backup,
            run: Arc::new({
                let board = board.clone();
                move |config, shutdown| {
                    let ops = Arc::new(super::serve_ops::Wired {
                        config: config.clone(),
                    });
                    Box::pin(mailfleet_serve::schedule::run(
                        config,
                        board.clone(),
                        ops,
                        shutdown,
                    ))
                }
            }),
        },
        Part {
            part: ServePart::Runs,
            run: Arc::new({
                let runs = runs.clone();
                move |config, shutdown| {
                    Box::pin(mailfleet_serve::runs_socket::listen(
                        config,
                        runs.clone(),
                        shutdown,
                    ))
                }
            }),
        },
        Part {
            part: ServePart::Web,
            run: Arc::new(move |config, shutdown| {
                let parts = mailfleet_serve::web::Parts {
                    board: board.clone(),
                    gate: gate.clone(),
                    ops: Arc::new(super::serve_ops::Wired {
                        config: config.clone(),
                    }),
                    runs: runs.clone(),
                };
                Box::pin(mailfleet_serve::web::run(config, parts, shutdown))
            }),
        },
    ]
}

/// Keeps the daemon's memory flat: glibc gives each thread that meets contention an arena
/// of its own and keeps what a large response freed in it; two arenas hold the daemon at
/// about 120 MB where the default grows past 150 MB (`scripts/bench-serve`). Called before
/// any thread starts.
#[allow(unsafe_code)] // mallopt has no safe wrapper; it only sets an allocator limit.
pub(crate) fn fewer_arenas() {
    // SAFETY: mallopt takes two integers and touches no memory of ours; M_ARENA_MAX is valid
    // on glibc, and a libc that does not know it returns 0 and changes nothing.
    let done = unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    if done == 0 {
        tracing::debug!("mallopt(M_ARENA_MAX) was refused: the allocator keeps its default");
    }
}

pub(crate) async fn run(cmd: Option<ServeCmd>, ctx: &Context) -> anyhow::Result<ExitCode> {
    if let Some(ServeCmd::HashPassword { password_file }) = cmd {
        let text = match password_file {
            Some(f) => {
                std::fs::read_to_string(&f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?
            }
            None => std::io::read_to_string(std::io::stdin())?,
        };
        let password = text.lines().next().unwrap_or("");
        if password.is_empty() {
            return Err(exit::Usage("the password is empty".into()).into());
        }
        println!(
            "{}",
            mailfleet_serve::web::auth::hash(password).map_err(anyhow::Error::msg)?
        );
        return Ok(exit::code(exit::OK));
    }
    // Sessions, the board and the runs outlive a reload: nobody is logged out by a SIGHUP,
    // no move or upgrade is cut.
    let runs = Arc::new(Runs::new(super::serve_runs::execute()));
    let parts = parts(Arc::default(), Arc::default(), runs.clone());
    let served = mailfleet_serve::serve(ctx.config_path().to_path_buf(), parts).await;
    runs.wind_down(mailfleet_serve::runs::GRACE).await;
    served?;
    Ok(exit::code(exit::OK))
}

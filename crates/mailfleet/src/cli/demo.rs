//! `mailfleet demo up|status|down`: the real mail stack on loopback.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;
use mailfleet_stack::demo;
use mailfleet_stack::{StackOptions, StackPorts};

use super::{Context, exit, print_json};

#[derive(Debug, Subcommand)]
pub(crate) enum DemoCmd {
    /// Start the stack and write a mailfleet.toml describing it.
    Up {
        /// Base directory [default: DATA_DIR/demo].
        #[arg(long)]
        base: Option<PathBuf>,
        /// Loopback address to bind.
        #[arg(long, default_value = "127.0.0.1")]
        host: IpAddr,
        /// Ports at fixed offsets from this: SMTP +25, IMAP +143/+243, LDAP +389... [default: 20000]
        #[arg(long)]
        port_base: Option<u16>,
        /// Install the missing Debian packages first (needs root).
        #[arg(long)]
        install: bool,
    },
    /// Show which daemons run and listen.
    Status {
        /// Base directory [default: DATA_DIR/demo].
        #[arg(long)]
        base: Option<PathBuf>,
    },
    /// Start `mailfleet serve` (the monitor and the dashboard) beside the demo fleet, with an
    /// operator `admin` whose password is in the base's `operator-password` (root only).
    Serve {
        /// Base directory [default: DATA_DIR/demo].
        #[arg(long)]
        base: Option<PathBuf>,
        /// Where the dashboard listens (loopback).
        #[arg(long, default_value = "127.0.0.1:8480")]
        listen: std::net::SocketAddr,
    },
    /// Stop the daemons this stack started (and `demo serve`'s), by their PIDs.
    Down {
        /// Base directory [default: DATA_DIR/demo].
        #[arg(long)]
        base: Option<PathBuf>,
    },
}

fn default_base(ctx: &Context) -> anyhow::Result<PathBuf> {
    Ok(demo::default_base(ctx.config_path())?)
}

pub(crate) async fn run(cmd: DemoCmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    match cmd {
        DemoCmd::Up {
            base,
            host,
            port_base,
            install,
        } => {
            if !host.is_loopback() {
                return Err(exit::Usage(format!(
                    "--host {host}: the demo binds only to loopback addresses (127.0.0.0/8)"
                ))
                .into());
            }
            let ports = match port_base {
                Some(b) => Some(StackPorts::from_base(b).ok_or_else(|| {
                    exit::Usage(format!("--port-base {b}: ports would pass 65535"))
                })?),
                None => None,
            };
            let base = match base {
                Some(b) => b,
                None => default_base(ctx)?,
            };
            let started = mailfleet_stack::up(&StackOptions {
                base,
                host: host.to_string(),
                ports,
                install,
            })
            .await?;
            let linked = demo::link_config(ctx.config_path(), &started.info.config)?;
            if ctx.json {
                print_json(&started.info)?;
            } else {
                print_up(&started, linked.as_deref());
            }
        }
        DemoCmd::Status { base } => {
            let base = match base {
                Some(b) => b,
                None => default_base(ctx)?,
            };
            let Some(list) = mailfleet_stack::status(&base)? else {
                bail!(
                    "no demo stack in {} (start one with `mailfleet demo up`)",
                    base.display()
                );
            };
            if ctx.json {
                print_json(&list)?;
            } else {
                for s in &list {
                    let state = match (s.pid, s.listening) {
                        (Some(_), true) => "up",
                        (Some(_), false) => "running, not listening",
                        (None, _) => "down",
                    };
                    let pid = s.pid.map_or("-".into(), |p| p.to_string());
                    println!(
                        "{:11} {:10} pid {:8} {}",
                        s.service,
                        state,
                        pid,
                        s.endpoints.join(" ")
                    );
                }
            }
            if list.iter().any(|s| !s.listening) {
                return Ok(exit::code(exit::PROBLEM));
            }
        }
        DemoCmd::Serve { base, listen } => {
            let base = match base {
                Some(b) => b,
                None => default_base(ctx)?,
            };
            let (pid, password) = serve_demo(ctx, &base, listen)?;
            println!(
                "dashboard: http://{listen}/ (mailfleet serve, PID {pid}; its log {})",
                base.join("serve.log").display()
            );
            println!(
                "login: admin, the password in {} (readable by root only)",
                password.display()
            );
            println!("stop it with the stack: mailfleet demo down");
        }
        DemoCmd::Down { base } => {
            let base = match base {
                Some(b) => b,
                None => default_base(ctx)?,
            };
            let stopped = mailfleet_stack::down(&base)?;
            if stopped.is_empty() {
                println!("nothing of the stack in {} was running", base.display());
            }
            for (service, pid) in stopped {
                println!("stopped {service} (pid {pid})");
            }
        }
    }
    Ok(exit::code(exit::OK))
}

/// Starts `mailfleet serve` for the demo in `base`: the operator's password made once (a
/// random token in a root-only file, never printed), its hash in the config.
fn serve_demo(
    ctx: &Context,
    base: &std::path::Path,
    listen: std::net::SocketAddr,
) -> anyhow::Result<(u32, PathBuf)> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = base.join("operator-password");
    if !path.exists() {
        let token = mailfleet_serve::web::auth::token().map_err(anyhow::Error::msg)?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{token}\n").as_bytes()))
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    let password =
        std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let hash = mailfleet_serve::web::auth::hash(password.trim()).map_err(anyhow::Error::msg)?;
    let exe = std::env::current_exe()?;
    let pid = mailfleet_stack::serve::start(base, ctx.config_path(), &exe, listen, &hash)?;
    Ok((pid, path))
}

fn print_up(started: &mailfleet_stack::Started, linked: Option<&std::path::Path>) {
    let info = &started.info;
    if started.already_running {
        println!(
            "the demo stack in {} is already running",
            info.base.display()
        );
    } else {
        println!("demo stack up in {}", info.base.display());
    }
    for (service, port) in info.ports.all() {
        let server = service.split([' ', '-']).next().unwrap_or("");
        let host = mailfleet_stack::layout::daemon_host(&info.host, server);
        println!("  {service:16} {host}:{port}");
    }
    println!("  logs             {}", info.base.join("log").display());
    let postfix = mailfleet_stack::Layout::new(&info.base).postfix_conf();
    println!(
        "  postfix          config in {0} (give it to tools: sendmail -C {0}, postqueue -c {0}; [policy] postfix_config_dir)",
        postfix.display()
    );
    match linked {
        Some(p) => println!(
            "config: {} (copy of {})",
            p.display(),
            info.config.display()
        ),
        None => println!(
            "config: {} (your own config was left alone: use --config {0})",
            info.config.display()
        ),
    }
    let names: Vec<&str> = demo::ACCOUNTS.iter().map(|(a, _)| *a).collect();
    println!(
        "accounts: {} (password {:?})",
        names.join(", "),
        demo::DEMO_PASSWORD
    );
    println!("next: mailfleet accounts list; mailfleet config check; mailfleet demo down");
}

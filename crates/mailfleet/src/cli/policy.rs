//! `mailfleet policy ...`: the policy server and milter, and the admin's view of quotas,
//! held mail and send blocks.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Subcommand;
use mailfleet_core::shutdown::Shutdown;
use mailfleet_policy::admin;

use super::policy_print::{print_held, print_status};
use super::{Context, exit, print_json};

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCmd {
    /// Serve Postfix's policy delegation protocol (and the milter, if configured).
    Serve {
        /// Listen here instead of `[policy] listen`.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Serve the milter here instead of `[policy] milter_listen`.
        #[arg(long)]
        milter_listen: Option<SocketAddr>,
    },
    /// Print the main.cf lines that put mailfleet in Postfix's path.
    PostfixConfig,
    /// Forget an account's usage (its counters start from zero).
    Reset {
        /// The account.
        address: String,
    },
    /// Mail held for being over quota, oldest first.
    Held {
        /// Only this account's.
        address: Option<String>,
    },
    /// Release an account's held mail now, whatever its quota.
    Release {
        /// The account.
        address: String,
    },
    /// Delete an account's held mail from the queue.
    Purge {
        /// The account.
        address: String,
    },
    /// Block an account from sending (every MTA sees it through the directory).
    Block {
        /// The account.
        address: String,
        /// Why (shown to the sender).
        #[arg(long)]
        reason: String,
    },
    /// Lift a send block.
    Unblock {
        /// The account.
        address: String,
    },
    /// The send-blocked accounts.
    Blocked,
    /// Counters, top senders, held mail and blocks.
    Status,
    /// Load a policy server (ours or a peer's) with END-OF-MESSAGE requests; throughput and
    /// latency.
    Bench {
        /// The server.
        #[arg(long)]
        target: SocketAddr,
        /// Connections at once.
        #[arg(long, default_value_t = 16)]
        connections: usize,
        /// Requests in all.
        #[arg(long, default_value_t = 100_000)]
        requests: usize,
        /// Distinct SASL users.
        #[arg(long, default_value_t = 1000)]
        users: usize,
    },
}

pub(crate) async fn run(cmd: PolicyCmd, ctx: &Context) -> anyhow::Result<ExitCode> {
    if let PolicyCmd::Bench {
        target,
        connections,
        requests,
        users,
    } = cmd
    {
        // Needs no config: it may load a peer's server.
        let m = mailfleet_policy::bench::run(&mailfleet_policy::bench::Load {
            target,
            connections,
            requests,
            users,
        })
        .await?;
        if ctx.json {
            print_json(&m)?;
        } else {
            println!(
                "{} requests in {:.2} s: {:.0}/s, p50 {} µs, p99 {} µs; answers {:?}",
                m.requests, m.seconds, m.per_second, m.p50_us, m.p99_us, m.actions
            );
        }
        return Ok(exit::code(exit::OK));
    }
    let mut config = ctx.load()?;
    match cmd {
        PolicyCmd::Serve {
            listen,
            milter_listen,
        } => {
            if let Some(l) = listen {
                config.policy.listen = l;
            }
            if milter_listen.is_some() {
                config.policy.milter_listen = milter_listen;
            }
            let (_, shutdown) = Shutdown::on_signals()?;
            mailfleet_policy::service::serve(&config, shutdown).await?;
        }
        PolicyCmd::PostfixConfig => {
            print!("{}", mailfleet_policy::postfix::lines(&config.policy).await);
        }
        PolicyCmd::Reset { address } => {
            let key = admin::reset(&config, &address).await?;
            println!("usage of {key} reset");
        }
        PolicyCmd::Held { address } => {
            let held = admin::held(&config, address.as_deref()).await?;
            if ctx.json {
                print_json(&held)?;
            } else {
                print_held(&held);
            }
        }
        PolicyCmd::Release { address } => {
            let ids = admin::release(&config, &address).await?;
            println!("released {} held messages of {address}", ids.len());
        }
        PolicyCmd::Purge { address } => {
            let ids = admin::purge(&config, &address).await?;
            println!("deleted {} held messages of {address}", ids.len());
        }
        PolicyCmd::Block { address, reason } => {
            let b = admin::block(&config, &address, &reason).await?;
            if b.lifts_on_password_change {
                println!(
                    "{} blocked from sending: {} (lifted when its password changes)",
                    b.address, b.reason
                );
            } else {
                println!("{} blocked from sending: {}", b.address, b.reason);
            }
        }
        PolicyCmd::Unblock { address } => {
            admin::unblock(&config, &address).await?;
            println!("{address} may send again");
        }
        PolicyCmd::Blocked => {
            let blocked = admin::blocked(&config).await?;
            if ctx.json {
                print_json(&blocked)?;
            } else if blocked.is_empty() {
                println!("no account is blocked from sending");
            } else {
                for b in &blocked {
                    println!("{:<32} since {}  {}", b.address, b.since, b.reason);
                }
            }
        }
        PolicyCmd::Status => {
            let s = admin::status(&config).await?;
            if ctx.json {
                print_json(&s)?;
            } else {
                print_status(&s);
            }
        }
        PolicyCmd::Bench { .. } => unreachable!("handled before the config is loaded"),
    }
    Ok(exit::code(exit::OK))
}

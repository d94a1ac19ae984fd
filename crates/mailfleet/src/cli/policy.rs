//! `mailfleet policy ...`: the policy server and milter, and the admin's view of quotas,
//! held mail and send blocks.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use mailfleet_core::Config;
use mailfleet_policy::counters::{Usage, now_ms};
use mailfleet_policy::embedded;
use serde::Serialize;

use super::{Context, print_json};

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
        return Ok(ExitCode::SUCCESS);
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
            serve(&config).await
        }
        PolicyCmd::PostfixConfig => {
            print!("{}", mailfleet_policy::postfix::lines(&config.policy));
            Ok(ExitCode::SUCCESS)
        }
        PolicyCmd::Reset { address } => {
            let key = address.to_ascii_lowercase();
            embedded::request_reset(&config.policy.state_file, &key)?;
            println!("usage of {key} reset");
            Ok(ExitCode::SUCCESS)
        }
        PolicyCmd::Held { address } => held(&config, ctx, address.as_deref()),
        PolicyCmd::Release { address } => act_on_held(&config, &address, true).await,
        PolicyCmd::Purge { address } => act_on_held(&config, &address, false).await,
        PolicyCmd::Block { address, reason } => {
            let book = mailfleet_core::AccountBook::open(&config).await?;
            book.block_sending(&address, &reason).await?;
            if mailfleet_policy::service::lifts_on_password_change(&reason) {
                // Remember the password now, so a change right after counts.
                let directory = mailfleet_core::directory::open(&config.directory).await?;
                let counters = mailfleet_policy::service::counters(&config)?;
                mailfleet_policy::service::remember_password_at_block(
                    counters.as_ref(),
                    directory.as_ref(),
                    &mailfleet_core::Address::parse(&address)?,
                )
                .await?;
                println!(
                    "{address} blocked from sending: {reason} (lifted when its password changes)"
                );
            } else {
                println!("{address} blocked from sending: {reason}");
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCmd::Unblock { address } => {
            let book = mailfleet_core::AccountBook::open(&config).await?;
            book.unblock_sending(&address).await?;
            println!("{address} may send again");
            Ok(ExitCode::SUCCESS)
        }
        PolicyCmd::Blocked => {
            let blocked = blocked(&config).await?;
            if ctx.json {
                print_json(&blocked)?;
            } else if blocked.is_empty() {
                println!("no account is blocked from sending");
            } else {
                for b in &blocked {
                    println!("{:<32} since {}  {}", b.address, b.since, b.reason);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCmd::Status => status(&config, ctx).await,
        PolicyCmd::Bench { .. } => unreachable!("handled before the config is loaded"),
    }
}

async fn serve(config: &Config) -> anyhow::Result<ExitCode> {
    let (engine, mut alerts) = mailfleet_policy::service::engine(config)?;
    let (policy, milter) = mailfleet_policy::service::bind(config).await?;
    tracing::info!(
        "policy server on {}{}",
        config.policy.listen,
        config
            .policy
            .milter_listen
            .map(|m| format!(", milter on {m}"))
            .unwrap_or_default()
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let alert_config = config.clone();
    tokio::spawn(async move {
        while let Some(alert) = alerts.recv().await {
            let (check, message) = match alert {
                mailfleet_policy::engine::Alert::Quota(b) => (
                    format!("quota {}", b.key),
                    format!(
                        "{} is over its {} quota ({} messages, {} recipients, {} bytes in the window); its mail is {:?} until the quota allows more",
                        b.key,
                        b.limit,
                        b.usage.messages,
                        b.usage.recipients,
                        b.usage.bytes,
                        b.action
                    ),
                ),
                mailfleet_policy::engine::Alert::State(e) => (
                    "state".to_string(),
                    format!("the policy state store failed: {e}"),
                ),
                mailfleet_policy::engine::Alert::Compromised(f) => (
                    format!("compromised {}", f.key),
                    format!("{} looks compromised: {}", f.key, f.reason),
                ),
                mailfleet_policy::engine::Alert::Unblocked(key) => (
                    format!("block {key}"),
                    format!("{key} changed its password: its send block is lifted"),
                ),
            };
            let n = mailfleet_probe::alarm::Notification {
                kind: mailfleet_probe::alarm::Kind::Problem,
                server: "policy".into(),
                check,
                state: mailfleet_probe::outcome::State::Warning,
                message,
            };
            mailfleet_probe::notify::send(&alert_config, &n).await;
        }
    });
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop_tx.send(true);
    });
    mailfleet_policy::service::run(config, engine, policy, milter, stop_rx).await?;
    Ok(ExitCode::SUCCESS)
}

fn held(config: &Config, ctx: &Context, address: Option<&str>) -> anyhow::Result<ExitCode> {
    let path = &config.policy.state_file;
    let c = embedded::open_db(path)?;
    let key = address.map(str::to_ascii_lowercase);
    let held = embedded::read_held(&c, path, key.as_deref())?;
    if ctx.json {
        print_json(&held)?;
    } else if held.is_empty() {
        println!("no mail held");
    } else {
        for h in &held {
            let at = chrono::DateTime::from_timestamp_millis(h.at_ms as i64).unwrap_or_default();
            println!(
                "{:<12} {:<32} held {}  {} recipients, {} bytes",
                h.queue_id,
                h.key,
                at.format("%Y-%m-%d %H:%M:%S"),
                h.usage.recipients,
                h.usage.bytes
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn act_on_held(config: &Config, address: &str, release: bool) -> anyhow::Result<ExitCode> {
    let path = &config.policy.state_file;
    let c = embedded::open_db(path)?;
    let key = address.to_ascii_lowercase();
    let held = embedded::read_held(&c, path, Some(&key))?;
    if held.is_empty() {
        bail!("no mail of {key} is held");
    }
    let ids: Vec<&str> = held.iter().map(|h| h.queue_id.as_str()).collect();
    let conf = config.policy.postfix_config_dir.as_deref();
    // The server drops the records of messages that left the hold queue on its next round.
    if release {
        mailfleet_policy::release::release_ids(conf, &ids).await?;
    } else {
        mailfleet_policy::release::delete_ids(conf, &ids).await?;
    }
    c.execute("DELETE FROM held WHERE key = ?1", [&key])
        .context("forgetting the held records")?;
    println!(
        "{} {} held messages of {key}",
        if release { "released" } else { "deleted" },
        ids.len()
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Serialize)]
struct Blocked {
    address: String,
    reason: String,
    since: String,
}

async fn blocked(config: &Config) -> anyhow::Result<Vec<Blocked>> {
    let directory = mailfleet_core::directory::open(&config.directory).await?;
    Ok(directory
        .list(&mailfleet_core::directory::Filter::default())
        .await?
        .into_iter()
        .filter_map(|a| {
            let b = a.send_block?;
            Some(Blocked {
                address: a.address.to_string(),
                reason: b.reason,
                since: b.since.to_rfc3339(),
            })
        })
        .collect())
}

#[derive(Debug, Serialize)]
struct Status {
    window_secs: u64,
    senders: Vec<Sender>,
    held: usize,
    blocked: Vec<Blocked>,
    dnsbl: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize)]
struct Sender {
    account: String,
    usage: Usage,
    limit_messages: Option<u64>,
}

async fn status(config: &Config, ctx: &Context) -> anyhow::Result<ExitCode> {
    let path = &config.policy.state_file;
    let window = config.policy.window;
    let usage = embedded::read_usage(path, now_ms(), window.as_millis() as u64)?;
    let c = embedded::open_db(path)?;
    let held = embedded::read_held(&c, path, None)?;
    let s = Status {
        window_secs: window.as_secs(),
        senders: usage
            .into_iter()
            .map(|(account, usage)| Sender {
                limit_messages: config
                    .policy
                    .rule_for(&account)
                    .filter(|r| !r.exempt)
                    .and_then(|r| r.messages),
                account,
                usage,
            })
            .collect(),
        held: held.len(),
        blocked: blocked(config).await?,
        dnsbl: std::fs::read(mailfleet_policy::service::dnsbl_hits_file(&config.policy))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default(),
    };
    if ctx.json {
        print_json(&s)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "window {} s; {} senders active, {} messages held, {} accounts blocked",
        s.window_secs,
        s.senders.len(),
        s.held,
        s.blocked.len()
    );
    if !s.senders.is_empty() {
        println!(
            "{:<32} {:>9} {:>6} {:>10} {:>12}",
            "ACCOUNT", "MESSAGES", "LIMIT", "RECIPIENTS", "BYTES"
        );
        for x in s.senders.iter().take(20) {
            println!(
                "{:<32} {:>9} {:>6} {:>10} {:>12}",
                x.account,
                x.usage.messages,
                x.limit_messages.map_or("-".into(), |l| l.to_string()),
                x.usage.recipients,
                x.usage.bytes
            );
        }
    }
    for b in &s.blocked {
        println!("blocked: {} since {}: {}", b.address, b.since, b.reason);
    }
    for d in &s.dnsbl {
        println!(
            "dnsbl {}: {} hits, {} distinct clients",
            d["zone"].as_str().unwrap_or(""),
            d["hits"],
            d["unique"]
        );
    }
    Ok(ExitCode::SUCCESS)
}

//! The running service: the policy server and the milter on their ports, the loop that keeps
//! send blocks in step with the account directory, and the loop that releases held mail.

use std::collections::HashMap;
use std::sync::Arc;

use mailfleet_core::Config;
use mailfleet_core::shutdown::Shutdown;
use tokio::net::TcpListener;

use crate::counters::Counters;
use crate::embedded::Embedded;
use crate::engine::{Alert, Engine};
use crate::error::PolicyError;

/// The engine with its counters, built from the config.
pub fn engine(
    config: &Config,
) -> Result<(Arc<Engine>, tokio::sync::mpsc::UnboundedReceiver<Alert>), PolicyError> {
    let counters = counters(config)?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    Ok((
        Arc::new(Engine::new(config.policy.clone(), counters, tx)),
        rx,
    ))
}

/// The configured state store: embedded, or Redis shared by the MTAs.
pub fn counters(config: &Config) -> Result<Arc<dyn Counters>, PolicyError> {
    Ok(match &config.state {
        mailfleet_core::config::StateConfig::Redis { url } => Arc::new(
            crate::redis_store::RedisCounters::open(url, std::time::Duration::from_millis(500))?,
        ),
        mailfleet_core::config::StateConfig::Embedded { .. } => {
            Arc::new(Embedded::open(&config.policy.state_file)?)
        }
    })
}

/// Records the password hash an account has now (as a fingerprint), so that the block just
/// set on it lifts itself once the password changes.
pub async fn remember_password_at_block(
    counters: &dyn Counters,
    directory: &dyn mailfleet_core::directory::Directory,
    address: &mailfleet_core::Address,
) -> Result<(), PolicyError> {
    let hash = directory.password_hash(address).await?;
    let fp = crate::counters::fingerprint(hash.as_deref());
    counters
        .set_block_fingerprint(&address.as_str().to_ascii_lowercase(), Some(&fp))
        .await
}

/// Block reasons lifted automatically once the account's password changes.
pub const UNBLOCK_ON_PASSWORD_CHANGE: [&str; 2] = ["compromised", "weak-password"];

/// Whether a block lifts itself when the password changes.
pub fn lifts_on_password_change(reason: &str) -> bool {
    UNBLOCK_ON_PASSWORD_CHANGE
        .iter()
        .any(|r| reason.trim_start().to_ascii_lowercase().starts_with(r))
}

/// Reads the send-blocked accounts from the directory into the engine, lifting the blocks
/// (`compromised`, `weak-password`) whose account's password hash has changed since it was
/// blocked; returns the accounts unblocked.
pub async fn refresh_blocks(
    engine: &Engine,
    directory: &dyn mailfleet_core::directory::Directory,
) -> Result<Vec<String>, PolicyError> {
    let accounts = directory
        .list(&mailfleet_core::directory::Filter::default())
        .await?;
    let counters = engine.counters();
    let mut blocks = HashMap::new();
    let mut unblocked = Vec::new();
    for a in accounts {
        let Some(block) = a.send_block else { continue };
        let key = a.address.as_str().to_ascii_lowercase();
        if lifts_on_password_change(&block.reason) {
            // LDAP with ppolicy says when the password changed: after the block is enough.
            if a.password_changed.is_some_and(|t| t > block.since) {
                directory.set_send_block(&a.address, None).await?;
                counters.set_block_fingerprint(&key, None).await?;
                tracing::warn!("{key}: password changed (pwdChangedTime), send block lifted");
                unblocked.push(key);
                continue;
            }
            let now = crate::counters::fingerprint(a.password_hash.as_deref());
            match counters.block_fingerprint(&key).await? {
                // First sight of this block (set elsewhere, or before this server ran).
                None => counters.set_block_fingerprint(&key, Some(&now)).await?,
                Some(then) if then != now => {
                    directory.set_send_block(&a.address, None).await?;
                    counters.set_block_fingerprint(&key, None).await?;
                    tracing::warn!(
                        "{key}: password changed, send block ({}) lifted",
                        block.reason
                    );
                    unblocked.push(key);
                    continue;
                }
                Some(_) => {}
            }
        }
        blocks.insert(key, block);
    }
    engine.set_blocks(blocks);
    Ok(unblocked)
}

/// Where the server leaves its DNSBL counts for `policy status`.
pub fn dnsbl_hits_file(
    config: &mailfleet_core::config::policy::PolicyConfig,
) -> std::path::PathBuf {
    config.state_file.with_file_name("policy-dnsbl.json")
}

/// Follows the MTA's log until shutdown, giving counts back for mail rejected after it was
/// counted. Starts at the log's end once it can be read; a failed read is retried next round.
async fn follow_log(
    engine: Arc<Engine>,
    path: std::path::PathBuf,
    every: std::time::Duration,
    shutdown: Shutdown,
) {
    let mut tick = tokio::time::interval(every);
    let stop = shutdown.wait();
    tokio::pin!(stop);
    let mut watch = None;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = &mut stop => return,
        }
        // A read hanging on the MTA does not hold up the shutdown.
        let read = async {
            match &mut watch {
                None => crate::logwatch::LogWatch::new(engine.postfix(), &path)
                    .await
                    .map(|w| {
                        watch = Some(w);
                        Vec::new()
                    }),
                Some(w) => w.poll().await,
            }
        };
        let read = tokio::select! {
            r = read => r,
            () = &mut stop => return,
        };
        match read {
            Ok(events) => {
                if failing {
                    tracing::info!("reading Postfix's log again");
                    failing = false;
                }
                for event in events {
                    if let Err(e) = engine.log_event(event).await {
                        tracing::error!("policy state: {e}");
                    }
                }
            }
            // Said once, not every round, until it reads again.
            Err(e) if !failing => {
                tracing::warn!("reading Postfix's log: {e}");
                failing = true;
            }
            Err(_) => {}
        }
    }
}

fn write_dnsbl_hits(engine: &Engine) {
    let hits = engine.dnsbl_hits();
    if hits.is_empty() {
        return;
    }
    let path = dnsbl_hits_file(engine.config());
    let tmp = path.with_extension("tmp");
    let written = serde_json::to_vec_pretty(&hits)
        .map_err(std::io::Error::other)
        .and_then(|json| std::fs::write(&tmp, json))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        tracing::warn!("writing {}: {e}", path.display());
    }
}

/// Binds the configured ports (the policy port, and the milter port when set).
pub async fn bind(config: &Config) -> Result<(TcpListener, Option<TcpListener>), PolicyError> {
    let p = &config.policy;
    let policy = TcpListener::bind(p.listen)
        .await
        .map_err(PolicyError::io(format!("listening on {}", p.listen)))?;
    let milter = match p.milter_listen {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .map_err(PolicyError::io(format!("listening on {a}")))?,
        ),
        None => None,
    };
    Ok((policy, milter))
}

/// `policy serve`: the engine from the config, its ports bound, alerts sent as
/// notifications, everything running until shutdown.
pub async fn serve(config: &Config, shutdown: Shutdown) -> Result<(), PolicyError> {
    let (engine, alerts) = engine(config)?;
    let (policy, milter) = bind(config).await?;
    tracing::info!(
        "policy server on {}{}",
        config.policy.listen,
        config
            .policy
            .milter_listen
            .map(|m| format!(", milter on {m}"))
            .unwrap_or_default()
    );
    let notifier = mailfleet_notify::Notifier::new(config);
    let forwarding = tokio::spawn(crate::alerts::forward(alerts, notifier));
    let r = run(config, engine, policy, milter, shutdown).await;
    // The engine is gone with `run`: the alert channel closes and the last alerts go out.
    let _ = tokio::time::timeout(mailfleet_core::shutdown::GRACE, forwarding).await;
    r
}

/// Runs everything until shutdown.
pub async fn run(
    config: &Config,
    engine: Arc<Engine>,
    policy: TcpListener,
    milter: Option<TcpListener>,
    shutdown: Shutdown,
) -> Result<(), PolicyError> {
    let directory: Arc<dyn mailfleet_core::directory::Directory> =
        Arc::from(mailfleet_core::directory::open(&config.directory).await?);
    refresh_blocks(&engine, directory.as_ref()).await?;
    let (observe, observations) = tokio::sync::mpsc::unbounded_channel();
    engine.observe_with(observe);
    let detector = tokio::spawn(crate::detect::run(
        engine.clone(),
        observations,
        directory.clone(),
    ));
    let policy_task = tokio::spawn(crate::server::serve(
        policy,
        engine.clone(),
        shutdown.clone(),
    ));
    let milter_task = milter.map(|m| {
        tokio::spawn(crate::milter_server::serve(
            m,
            engine.clone(),
            shutdown.clone(),
        ))
    });
    let stop = shutdown.wait();
    tokio::pin!(stop);
    // Read on the MTA through its access: its own task, so a slow server never holds up
    // the release rounds.
    let log_task = config.policy.postfix_log.clone().map(|path| {
        tokio::spawn(follow_log(
            engine.clone(),
            path,
            config.policy.block_refresh,
            shutdown.clone(),
        ))
    });
    let mut blocks = tokio::time::interval(config.policy.block_refresh);
    // A failing state store is asked once a second whether it answers again.
    let mut state = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut release = tokio::time::interval(config.policy.release_interval);
    loop {
        tokio::select! {
            _ = blocks.tick() => {
                match refresh_blocks(&engine, directory.as_ref()).await {
                    Ok(unblocked) => {
                        for key in unblocked {
                            engine.raise(crate::engine::Alert::Unblocked(key));
                        }
                    }
                    Err(e) => tracing::error!("reading send blocks from the directory: {e}"),
                }
                if let Err(e) = engine.counters().poll_requests().await {
                    tracing::error!("policy state: {e}");
                }
                write_dnsbl_hits(&engine);
            }
            _ = state.tick() => engine.check_state().await,
            _ = release.tick() => match crate::release::round(&engine).await {
                Ok(r) if !r.released.is_empty() || !r.gone.is_empty() => tracing::info!(
                    "released {} held messages, {} left the hold queue otherwise, {} waiting",
                    r.released.len(), r.gone.len(), r.waiting
                ),
                Ok(_) => {}
                Err(e) => tracing::error!("releasing held mail: {e}"),
            },
            () = &mut stop => break,
        }
    }
    let _ = policy_task.await;
    if let Some(t) = log_task {
        let _ = t.await;
    }
    if let Some(t) = milter_task {
        let _ = t.await;
    }
    // Every request answered is counted on disk before the process goes: the writer
    // batches behind the answers (a crash may lose its last 20 ms, a shutdown must not).
    if let Err(e) = engine.counters().flush().await {
        tracing::error!("policy state: the last counts may not be saved: {e}");
    }
    // The detector holds the engine (and through it the channel of alerts): it ends here,
    // so the last alerts are sent and `serve` returns.
    detector.abort();
    let _ = detector.await;
    Ok(())
}

//! A load generator for policy servers (ours and the peers'): several connections, each
//! sending END-OF-MESSAGE requests as Postfix does (one at a time, waiting for the answer),
//! from a spread of SASL users; per-request latency and overall throughput.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::PolicyClient;
use crate::error::PolicyError;

/// What to send.
#[derive(Debug, Clone)]
pub struct Load {
    /// The server.
    pub target: SocketAddr,
    /// Connections at once (Postfix keeps one per smtpd process).
    pub connections: usize,
    /// Requests in all.
    pub requests: usize,
    /// Distinct SASL users the requests come from.
    pub users: usize,
}

/// What was measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Measured {
    /// Requests answered.
    pub requests: usize,
    /// Wall time.
    pub seconds: f64,
    /// Requests per second.
    pub per_second: f64,
    /// Median latency, microseconds.
    pub p50_us: u64,
    /// 99th percentile latency, microseconds.
    pub p99_us: u64,
    /// Answers by action verb.
    pub actions: std::collections::BTreeMap<String, usize>,
}

/// The n-th request, as Postfix writes an END-OF-MESSAGE one.
fn request(n: usize, users: usize) -> String {
    let user = n % users.max(1);
    format!(
        "request=smtpd_access_policy\nprotocol_state=END-OF-MESSAGE\nprotocol_name=ESMTPSA\n\
         helo_name=client{user}.example.net\nqueue_id={n:X}\nsender=user{user}@example.com\n\
         recipient=\nrecipient_count=2\nclient_address=192.0.2.{}\nclient_name=unknown\n\
         reverse_client_name=unknown\ninstance={n:x}.1\nsasl_method=PLAIN\n\
         sasl_username=user{user}@example.com\nsasl_sender=\nsize={}\nccert_subject=\n\
         ccert_issuer=\nccert_fingerprint=\nencryption_protocol=TLSv1.3\n\
         encryption_cipher=TLS_AES_256_GCM_SHA384\nencryption_keysize=256\netrn_domain=\n\
         stress=\ncompatibility_level=3.6\n\n",
        1 + user % 250,
        1000 + n % 50_000
    )
}

async fn one_connection(
    target: SocketAddr,
    first: usize,
    count: usize,
    users: usize,
) -> Result<(Vec<u32>, Vec<String>), PolicyError> {
    let mut c = PolicyClient::connect(target, Duration::from_secs(30)).await?;
    let mut latencies = Vec::with_capacity(count);
    let mut actions = Vec::with_capacity(count);
    for n in first..first + count {
        // The request is ready before the clock starts, as Postfix has it.
        let bytes = request(n, users);
        let started = Instant::now();
        let action = c.send_raw(bytes.as_bytes()).await?;
        latencies.push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
        actions.push(action.verb().to_string());
    }
    Ok((latencies, actions))
}

/// Runs the load and measures it.
pub async fn run(load: &Load) -> Result<Measured, PolicyError> {
    let per = load.requests / load.connections.max(1);
    let started = Instant::now();
    let tasks: Vec<_> = (0..load.connections.max(1))
        .map(|i| tokio::spawn(one_connection(load.target, i * per, per, load.users)))
        .collect();
    let mut latencies = Vec::with_capacity(load.requests);
    let mut out = Measured::default();
    for t in tasks {
        let (l, a) = t
            .await
            .map_err(|e| PolicyError::io("bench task")(std::io::Error::other(e)))??;
        latencies.extend(l);
        for verb in a {
            *out.actions.entry(verb).or_default() += 1;
        }
    }
    let elapsed = started.elapsed().max(Duration::from_micros(1));
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    out.requests = latencies.len();
    out.seconds = elapsed.as_secs_f64();
    out.per_second = latencies.len() as f64 / elapsed.as_secs_f64();
    out.p50_us = u64::from(pct(0.50));
    out.p99_us = u64::from(pct(0.99));
    Ok(out)
}

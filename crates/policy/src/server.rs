//! The policy delegation server: one task per connection (Postfix keeps one open per smtpd
//! process), requests answered in order. A malformed request, an over-long line or a client
//! silent past the idle timeout closes that connection only.

use std::sync::Arc;
use std::time::Duration;

use mailfleet_policy_proto::policy::{Action, MAX_LINE, Request, RequestBuilder};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use mailfleet_core::shutdown::{GRACE, InFlight, Shutdown};

use crate::engine::{Engine, Message, Verdict};

/// The answer to one request.
pub async fn decide(engine: &Engine, r: &Request) -> Action {
    let key = engine.key(r.get("sasl_username"), r.get("sender"));
    let verdict = match r.state() {
        // The send-block check ahead of the permits: the block alone, nothing counted.
        _ if r.get("policy_context") == Some(crate::postfix::BLOCK_CONTEXT) => key
            .as_deref()
            .and_then(|k| engine.blocked(k))
            .unwrap_or(Verdict::Pass),
        "END-OF-MESSAGE" => {
            let m = Message {
                sasl_user: r.get("sasl_username"),
                sender: r.get("sender"),
                recipients: r.number("recipient_count"),
                bytes: r.number("size"),
                queue_id: r.get("queue_id"),
                client: r.get("client_address"),
            };
            match engine.end_of_message(&m).await {
                Ok(v) => v,
                Err(e) => engine.state_failed(&e),
            }
        }
        // Before the message: blocks and the DNSBL stage act, as early as possible.
        _ => match key.as_deref().and_then(|k| engine.blocked(k)) {
            Some(v) => v,
            None => {
                let v = engine
                    .client_check(r.get("client_address"))
                    .await
                    .unwrap_or(Verdict::Pass);
                if let (Verdict::Pass, "RCPT", Some(k)) = (&v, r.state(), key.as_deref()) {
                    engine.recipient_accepted(k);
                }
                v
            }
        },
    };
    match verdict {
        Verdict::Pass => Action::Dunno,
        Verdict::Hold(t) => Action::Hold(t),
        Verdict::Defer(t) => Action::DeferIfPermit(t),
        Verdict::Reject(t) => Action::Reject(t),
    }
}

/// Reads one line of at most `MAX_LINE` bytes into `line` (without its `\n`); `Ok(false)` at
/// a clean end of input.
async fn read_line(
    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    line: &mut Vec<u8>,
) -> std::io::Result<bool> {
    line.clear();
    let n = (&mut *r)
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', line)
        .await?;
    if n == 0 {
        return Ok(false);
    }
    if line.last() != Some(&b'\n') {
        // Either longer than MAX_LINE (the parser refuses it) or cut by the end of input.
        if line.len() > MAX_LINE {
            return Ok(true);
        }
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed mid-line",
        ));
    }
    line.pop();
    Ok(true)
}

async fn connection(stream: TcpStream, engine: Arc<Engine>, idle: Duration, shutdown: Shutdown) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let _ = stream.set_nodelay(true);
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut builder = RequestBuilder::default();
    let mut line = Vec::with_capacity(256);
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        // Between requests a shutdown ends the connection; a request being read is finished.
        let read = tokio::select! {
            r = tokio::time::timeout(idle, read_line(&mut r, &mut line)) => r,
            () = &mut stop, if builder.is_empty() => return,
        };
        match read {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return,
            Ok(Err(e)) => {
                tracing::debug!("policy client {peer}: {e}");
                return;
            }
            Err(_) => {
                tracing::debug!("policy client {peer}: idle for {idle:?}, closing");
                return;
            }
        }
        match builder.line(&line) {
            Ok(None) => {}
            Ok(Some(request)) => {
                let reply = decide(&engine, &request).await.encode();
                if w.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!("policy client {peer}: {e}: closing the connection");
                return;
            }
        }
    }
}

/// Accepts connections until shutdown, each handled by its own task; then waits for the
/// connections in flight (each finishes the request it is reading) within the grace.
pub async fn accept_loop<F, Fut>(what: &str, listener: TcpListener, shutdown: Shutdown, handle: F)
where
    F: Fn(TcpStream, Shutdown) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let in_flight = InFlight::new();
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => in_flight.spawn(handle(stream, shutdown.clone())),
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::error!("{what} accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = &mut stop => break,
        }
    }
    drop(listener);
    let left = in_flight.drain(GRACE).await;
    if left > 0 {
        tracing::warn!("{what}: {left} connections still busy after {GRACE:?}, left behind");
    }
}

/// Serves policy requests until shutdown.
pub async fn serve(listener: TcpListener, engine: Arc<Engine>, shutdown: Shutdown) {
    let idle = engine.config().idle_timeout;
    accept_loop("policy server", listener, shutdown, |stream, stop| {
        connection(stream, engine.clone(), idle, stop)
    })
    .await;
}

//! Sending notifications: by mail through the fleet's own MTA, and as JSON to a webhook.
//! The webhook client is a few lines of HTTP/1.1 by hand: one POST to a plain http:// URL
//! does not justify an HTTP client stack.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::alarm::{Kind, Notification};
use crate::outcome::Run;

/// The subject line of a notification.
pub fn subject(n: &Notification) -> String {
    let kind = match n.kind {
        Kind::Problem => "PROBLEM",
        Kind::Reminder => "STILL",
        Kind::Recovery => "RECOVERY",
        Kind::Flapping => "FLAPPING",
        Kind::Restart => "RESTARTED",
    };
    format!("[mailfleet] {kind} {} {} is {}", n.server, n.check, n.state)
}

/// Mails a notification to `to` through the MTA at `mta`.
pub async fn email(
    n: &Notification,
    mta: (&str, u16),
    from: &str,
    to: &str,
    timeout: Duration,
) -> Result<(), String> {
    let message = format!(
        "From: mailfleet <{from}>\r\nTo: <{to}>\r\nSubject: {}\r\nAuto-Submitted: auto-generated\r\n\r\n{}\r\n",
        subject(n),
        n.message
    );
    let mut run = Run::new(timeout);
    let at = crate::tls::Endpoint::plain(mta.0, mta.1);
    let dialog = crate::smtp::Dialog::default();
    crate::smtp::send(&mut run, &at, &dialog, from, to, &message)
        .await
        .map_err(|f| f.to_string())
}

/// POSTs a notification as JSON to an `http://host[:port]/path` URL; a 2xx answer is success.
pub async fn webhook(n: &Notification, url: &str, timeout: Duration) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>().map_err(|_| format!("bad port in {url}"))?,
        ),
        None => (authority, 80),
    };
    let body = serde_json::to_string(n).map_err(|e| e.to_string())?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: mailfleet\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        let mut s = crate::line::connect(host, port)
            .await
            .map_err(|e| e.to_string())?;
        s.write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut head = vec![0u8; 64];
        let n = s.read(&mut head).await.map_err(|e| e.to_string())?;
        let status = String::from_utf8_lossy(&head[..n]);
        let code = status.split_whitespace().nth(1).unwrap_or("");
        if code.starts_with('2') {
            Ok(())
        } else {
            Err(format!(
                "{url} answered {:?}",
                status.lines().next().unwrap_or("")
            ))
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("{url}: no answer within {timeout:?}"))?
}

/// Logs a notification and sends it by mail (through the fleet's first MTA) and webhook,
/// as `[monitor]` configures.
pub async fn send(config: &mailfleet_core::Config, n: &Notification) {
    let m = &config.monitor;
    let timeout = config.probe.timeout;
    match n.kind {
        Kind::Recovery => tracing::info!("{}: {}", subject(n), n.message),
        _ => tracing::warn!("{}: {}", subject(n), n.message),
    }
    if !m.notify_email.is_empty() {
        let mta = config
            .fleet
            .with_role(mailfleet_core::Role::Mta)
            .find_map(|s| Some((s.host.as_str(), s.ports.smtp?)));
        match mta {
            Some(mta) => {
                for to in &m.notify_email {
                    if let Err(e) =
                        email(n, mta, m.notify_from.as_str(), to.as_str(), timeout).await
                    {
                        tracing::error!("mailing the alarm to {to}: {e}");
                    }
                }
            }
            None => tracing::error!(
                "monitor.notify_email is set but the fleet has no MTA with an smtp port"
            ),
        }
    }
    if let Some(url) = &m.webhook_url
        && let Err(e) = webhook(n, url, timeout).await
    {
        tracing::error!("webhook: {e}");
    }
}

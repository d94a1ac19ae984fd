//! Sending notifications: to the log, by mail through the fleet's own MTA (STARTTLS as that
//! server's `tls` settings ask), and as JSON to a webhook (`http://` or `https://`).

use std::time::Duration;

use mailfleet_core::fleet::TlsSettings;
use mailfleet_core::{Config, Role};
use mailfleet_mailclient::smtp::{Options, Smtp};
use mailfleet_mailclient::{Clock, Endpoint, MailError, Tls};

use crate::alarm::{Kind, Notification};

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

/// The MTA alarm mail goes through.
#[derive(Debug, Clone)]
struct Mta {
    name: String,
    host: String,
    port: u16,
    tls: TlsSettings,
}

/// Where notifications go, as `[monitor]` configures it.
#[derive(Debug, Clone)]
pub struct Notifier {
    to: Vec<String>,
    from: String,
    mta: Option<Mta>,
    webhook: Option<String>,
    timeout: Duration,
}

impl Notifier {
    /// The channels of the config: `notify_email` through the fleet's first MTA with an SMTP
    /// port, `webhook_url`; each exchange within `[probe] timeout_secs`.
    pub fn new(config: &Config) -> Notifier {
        let m = &config.monitor;
        let mta = config.fleet.with_role(Role::Mta).find_map(|s| {
            Some(Mta {
                name: s.name.clone(),
                host: s.host.clone(),
                port: s.ports.smtp?,
                tls: s.tls.clone(),
            })
        });
        Notifier {
            to: m.notify_email.iter().map(ToString::to_string).collect(),
            from: m.notify_from.to_string(),
            mta,
            webhook: m.webhook_url.clone(),
            timeout: config.probe.timeout,
        }
    }

    /// Mails a notification to `to` through the MTA.
    pub async fn email(&self, n: &Notification, to: &str) -> Result<(), String> {
        self.mail(to, &subject(n), &n.message).await
    }

    /// Mails `body` under `subject` to `to` through the fleet's first MTA (an automatic
    /// message, from `[monitor] notify_from`).
    pub async fn mail(&self, to: &str, subject: &str, body: &str) -> Result<(), String> {
        let mta = self
            .mta
            .as_ref()
            .ok_or("mail is to be sent but the fleet has no MTA with an smtp port")?;
        // A TLS setting that cannot be used stops the mail: never clear text instead.
        let tls =
            Tls::new(&mta.tls, &mta.host).map_err(|e| format!("server {:?}: {e}", mta.name))?;
        // Lines end in CRLF on the wire, whatever the body was written with.
        let body = body.replace("\r\n", "\n").replace('\n', "\r\n");
        let message = format!(
            "From: mailfleet <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nAuto-Submitted: auto-generated\r\n\r\n{body}\r\n",
            from = self.from,
        );
        let at = Endpoint {
            host: &mta.host,
            port: mta.port,
            tls: Some(&tls),
            implicit: false,
        };
        let clock = Clock::new(self.timeout).within(self.timeout);
        let sent = async {
            let mut s = Smtp::connect(&at, Options::default(), &clock).await?;
            s.send(&self.from, &[to], message.as_bytes()).await?;
            s.quit().await;
            Ok::<(), MailError>(())
        };
        sent.await.map_err(|e| format!("through {}: {e}", mta.name))
    }

    /// POSTs a notification as JSON to the webhook; a 2xx answer is success.
    pub async fn webhook(&self, n: &Notification, url: &str) -> Result<(), String> {
        let body = serde_json::to_vec(n).map_err(|e| e.to_string())?;
        let clock = Clock::new(self.timeout).within(self.timeout);
        let r = mailfleet_mailclient::http::post_json(url, body, &clock)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if (200..300).contains(&r.status) {
            Ok(())
        } else {
            Err(format!("{url} answered {:?}", r.status_line))
        }
    }

    /// Logs a notification and sends it by every configured channel; a channel that fails is
    /// logged and the others still go.
    pub async fn send(&self, n: &Notification) {
        match n.kind {
            Kind::Recovery => tracing::info!("{}: {}", subject(n), n.message),
            _ => tracing::warn!("{}: {}", subject(n), n.message),
        }
        for to in &self.to {
            if let Err(e) = self.email(n, to).await {
                tracing::error!("mailing the alarm to {to}: {e}");
            }
        }
        if let Some(url) = &self.webhook
            && let Err(e) = self.webhook(n, url).await
        {
            tracing::error!("webhook: {e}");
        }
    }
}

//! What the policy service's alerts say to an admin: each becomes a notification (log, mail
//! through the fleet's MTA, webhook) under the server name `policy`.

use mailfleet_notify::{Kind, Notification, Notifier, State};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::engine::Alert;

/// The notification for an alert.
pub fn notification(alert: &Alert) -> Notification {
    let (kind, check, message) = match alert {
        Alert::Quota(b) => (
            Kind::Problem,
            format!("quota {}", b.key),
            format!(
                "{} is over its {} quota ({} messages, {} recipients, {} bytes in the window); its mail is {:?} until the quota allows more",
                b.key, b.limit, b.usage.messages, b.usage.recipients, b.usage.bytes, b.action
            ),
        ),
        Alert::State(e) => (
            Kind::Problem,
            "state".to_string(),
            format!("the policy state store failed: {e}"),
        ),
        Alert::StateRecovered => (
            Kind::Recovery,
            "state".to_string(),
            "the policy state store answers again: quotas count again".to_string(),
        ),
        Alert::Compromised(f) => (
            Kind::Problem,
            format!("compromised {}", f.key),
            format!("{} looks compromised: {}", f.key, f.reason),
        ),
        Alert::Unblocked(key) => (
            Kind::Problem,
            format!("block {key}"),
            format!("{key} changed its password: its send block is lifted"),
        ),
    };
    Notification {
        state: if kind == Kind::Recovery {
            State::Ok
        } else {
            State::Warning
        },
        kind,
        server: "policy".into(),
        check,
        message,
    }
}

/// Sends every alert as it comes, until the engine (the sender) is gone.
pub async fn forward(mut alerts: UnboundedReceiver<Alert>, notifier: Notifier) {
    while let Some(alert) = alerts.recv().await {
        notifier.send(&notification(&alert)).await;
    }
}

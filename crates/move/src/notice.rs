//! Notices: a summary to the admins when a batch ends (what moved, lock times, failures),
//! and optionally a mail to each user before their move, from the admin's template, both
//! through the fleet's own MTA.

use std::fmt::Write as _;
use std::time::Duration;

use mailfleet_core::Config;
use mailfleet_notify::Notifier;

use crate::batch::BatchReport;
use crate::journal::Entry;

/// The summary of a batch: its subject and body.
pub fn summary(command: &str, report: &BatchReport) -> (String, String) {
    let moved = report.moves.iter().filter(|m| m.moved.is_some()).count();
    let failed = report.failed();
    let subject = format!("[mailfleet] move batch: {moved} moved, {failed} failed");
    let mut body = format!("{command}\n\n");
    for m in &report.moves {
        match (&m.moved, &m.error) {
            (Some(d), _) => {
                let _ = writeln!(
                    body,
                    "{}: {} -> {}, {} messages, {} passes, locked {:.1} s",
                    d.address,
                    d.from,
                    d.to,
                    d.messages,
                    d.passes,
                    d.lock_ms / 1000.0
                );
            }
            (None, Some(e)) => {
                let locked = if m.still_locked {
                    " (STILL LOCKED)"
                } else {
                    ""
                };
                let _ = writeln!(body, "{}: NOT MOVED{locked}: {e}", m.address);
            }
            _ => {}
        }
    }
    if let Some(why) = &report.stopped {
        let _ = writeln!(body, "\nThe batch stopped early: {why}");
    }
    (subject, body)
}

/// Mails the summary to `[move] notify_email`; what could not be sent.
pub async fn send_summary(config: &Config, command: &str, report: &BatchReport) -> Vec<String> {
    if config.moves.notify_email.is_empty() || report.moves.is_empty() {
        return Vec::new();
    }
    let (subject, body) = summary(command, report);
    let notifier = Notifier::new(config);
    let mut errors = Vec::new();
    for to in &config.moves.notify_email {
        if let Err(e) = notifier.mail(&to.to_string(), &subject, &body).await {
            errors.push(format!("the summary to {to}: {e}"));
        }
    }
    errors
}

/// The template filled in for one user: a first line `Subject: ...` is the subject.
pub fn user_mail(template: &str, address: &str, when: &str, lock: Duration) -> (String, String) {
    let lock = format!("{} seconds", lock.as_secs().max(1));
    mailfleet_notify::template::fill(
        template,
        &[("address", address), ("when", when), ("lock", &lock)],
        "Your mailbox is being moved",
    )
}

/// Mails each user of `entries` the `[move] user_notice` template before their move; what
/// could not be sent (the moves go ahead: a notice is a courtesy, not a condition).
pub async fn send_user_notices(config: &Config, entries: &[Entry], lock: Duration) -> Vec<String> {
    let Some(path) = &config.moves.user_notice else {
        return Vec::new();
    };
    let template = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return vec![format!("{}: {e}", path.display())],
    };
    let when = chrono_now();
    let notifier = Notifier::new(config);
    let mut errors = Vec::new();
    for e in entries {
        let (subject, body) = user_mail(&template, &e.address, &when, lock);
        if let Err(err) = notifier.mail(&e.address, &subject, &body).await {
            errors.push(format!("the notice to {}: {err}", e.address));
        }
    }
    errors
}

/// Now, for a notice's reader (UTC).
fn chrono_now() -> String {
    chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_gives_subject_and_body() {
        let (s, b) = user_mail(
            "Subject: Moving {address}\n\nAt {when}, for about {lock}.\n",
            "a@x",
            "2026-12-02 10:00 UTC",
            Duration::from_secs(5),
        );
        assert_eq!(s, "Moving a@x");
        assert_eq!(b, "At 2026-12-02 10:00 UTC, for about 5 seconds.\n");
        let (s, _) = user_mail("no subject line", "a@x", "", Duration::ZERO);
        assert_eq!(s, "Your mailbox is being moved");
        assert!(chrono_now().ends_with(" UTC") && chrono_now().starts_with("20"));
    }
}

//! End to end: a uniquely tagged message sent through an MTA, timed until it can be fetched
//! over IMAP from the probe mailbox on its store, then deleted. This is the MTA round trip.

use std::time::Duration;

use mailfleet_mailclient::MailError;
use mailfleet_mailclient::tls::Endpoint;

use crate::outcome::{Failure, Run};

/// Where to send and where to look.
pub struct Route<'a> {
    /// The MTA's SMTP port.
    pub mta: Endpoint<'a>,
    /// The store's IMAP port.
    pub store: Endpoint<'a>,
    /// The probe account on the store.
    pub account: &'a str,
    /// Its password.
    pub password: &'a str,
}

/// A tag no other message carries.
fn tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("mailfleet-e2e-{}-{nanos}", std::process::id())
}

/// Sends, waits for the message in INBOX, deletes it; returns the delivery time.
pub async fn check(run: &mut Run, r: &Route<'_>) -> Result<String, Failure> {
    let tag = tag();
    let message = format!(
        "From: <{a}>\r\nTo: <{a}>\r\nSubject: {tag}\r\nMessage-ID: <{tag}@mailfleet.invalid>\r\n\r\nmailfleet end-to-end probe; deleted on arrival.\r\n",
        a = r.account
    );
    let sent = tokio::time::Instant::now();
    let mut smtp = crate::smtp::session(run, &r.mta, &crate::smtp::Dialog::default()).await?;
    smtp.send(r.account, &[r.account], message.as_bytes())
        .await?;
    smtp.quit().await;
    let mut s = crate::imap::login(run, &r.store, r.account, r.password).await?;
    s.select("INBOX").await?;
    // The polling loop is one step: its searches are not timed one by one.
    let clock = run.clock().clone();
    s.set_clock(clock.quiet());
    let query = format!("HEADER Message-ID \"{tag}@mailfleet.invalid\"");
    let uids = clock
        .run("delivery", async {
            loop {
                let found = s.uid_search(&query).await?;
                if !found.is_empty() {
                    return Ok::<_, MailError>(found);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                // NOOP makes the server report new mail in the selected mailbox.
                s.noop().await?;
            }
        })
        .await
        .map_err(|e| {
            // The searches share the check's deadline: whichever notices it, the step that
            // ran out of time is the wait for delivery.
            if e.is_timeout() {
                Failure::new("delivery", e.kind())
            } else {
                Failure::from(e)
            }
        })?;
    let delivered = sent.elapsed();
    s.set_clock(clock);
    let set = uids
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    s.uid_store(&set, "+FLAGS.SILENT (\\Deleted)").await?;
    s.uid_expunge(&set).await?;
    s.logout().await;
    Ok(format!("delivered in {} ms", delivered.as_millis()))
}

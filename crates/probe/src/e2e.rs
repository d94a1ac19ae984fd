//! End to end: a uniquely tagged message sent through an MTA, timed until it can be fetched
//! over IMAP from the probe mailbox on its store, then deleted. This is the MTA round trip.

use std::time::Duration;

use crate::imap;
use crate::outcome::{Failure, Run};

/// Where to send and where to look.
pub struct Route<'a> {
    /// The MTA's SMTP port.
    pub mta: crate::tls::Endpoint<'a>,
    /// The store's IMAP port.
    pub store: crate::tls::Endpoint<'a>,
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
    let dialog = crate::smtp::Dialog::default();
    crate::smtp::send(run, &r.mta, &dialog, r.account, r.account, &message).await?;
    let (mut s, _) = imap::login(run, &r.store, r.account, r.password).await?;
    run.step("select", s.select("INBOX")).await?;
    let uids = run
        .step("delivery", async {
            loop {
                let found = s
                    .uid_search(format!("HEADER Message-ID \"{tag}@mailfleet.invalid\""))
                    .await?;
                if !found.is_empty() {
                    return Ok::<_, async_imap::error::Error>(found);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                // NOOP makes the server report new mail in the selected mailbox.
                s.noop().await?;
            }
        })
        .await?;
    let delivered = sent.elapsed();
    let set = uids
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    run.step("delete", async {
        futures::TryStreamExt::try_collect::<Vec<_>>(
            s.uid_store(&set, "+FLAGS.SILENT (\\Deleted)").await?,
        )
        .await?;
        futures::TryStreamExt::try_collect::<Vec<_>>(s.uid_expunge(&set).await?).await?;
        Ok::<(), async_imap::error::Error>(())
    })
    .await?;
    let _ = s.logout().await;
    Ok(format!("delivered in {} ms", delivered.as_millis()))
}

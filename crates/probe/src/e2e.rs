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
    /// Tagged messages older than this are left over from earlier rounds (the check's own
    /// deadline: no round waits longer for its message).
    pub stale_after: Duration,
}

fn join(uids: &[u32]) -> String {
    uids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// What every end-to-end message's subject starts with.
const TAG_PREFIX: &str = "mailfleet-e2e-";

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// A tag no other message carries: the prefix, this process, the time it was sent.
fn tag() -> String {
    format!("{TAG_PREFIX}{}-{}", std::process::id(), now_nanos())
}

/// When a tagged message was sent, from its subject (`mailfleet-e2e-PID-NANOS`).
fn sent_at(subject: &str) -> Option<u128> {
    let rest = subject.trim().strip_prefix(TAG_PREFIX)?;
    rest.rsplit_once('-')?.1.trim().parse().ok()
}

/// The UIDs of tagged messages sent longer ago than `older_than`: earlier rounds' messages
/// that arrived after their check gave up (a store that was frozen, a queue that waited).
/// A younger one may belong to a check still waiting for it (another MTA's), and is left.
fn stale(fetched: &[mailfleet_mailclient::imap::Fetch], older_than: Duration) -> Vec<u32> {
    let limit = now_nanos().saturating_sub(older_than.as_nanos());
    fetched
        .iter()
        .filter_map(|f| {
            let header = String::from_utf8_lossy(f.header()?).into_owned();
            let subject = header.lines().find_map(|l| {
                l.strip_prefix("Subject:")
                    .or_else(|| l.strip_prefix("subject:"))
            })?;
            (sent_at(subject)? < limit).then_some(f.uid?)
        })
        .collect()
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
    // With this round's message, those of earlier rounds that came late.
    let tagged = s
        .uid_search(&format!("HEADER Subject \"{TAG_PREFIX}\""))
        .await?;
    let mut delete = uids.clone();
    if !tagged.is_empty() {
        let set = join(&tagged);
        let fetched = s
            .uid_fetch(&set, "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            .await?;
        delete.extend(stale(&fetched, r.stale_after));
        delete.sort_unstable();
        delete.dedup();
    }
    let set = join(&delete);
    s.uid_store(&set, "+FLAGS.SILENT (\\Deleted)").await?;
    s.uid_expunge(&set).await?;
    s.logout().await;
    Ok(format!("delivered in {} ms", delivered.as_millis()))
}

//! IMAP: STARTTLS or implicit TLS, login, SELECT INBOX, FETCH of a message. A store whose
//! login works but whose mailbox cannot be opened or read is CRITICAL: that is the outage a
//! port check misses.

use mailfleet_mailclient::imap::Imap;
use mailfleet_mailclient::tls::Endpoint;

use crate::outcome::{Failure, Run};

/// What the probe mailbox holds at least, so FETCH always has something to read.
const PROBE_MESSAGE: &str = "From: probe@mailfleet.invalid\r\nSubject: mailfleet probe (keep)\r\n\r\nKept for mailfleet's IMAP fetch probe.\r\n";

/// How often FETCH is tried again when the message it asked for was expunged meanwhile.
const FETCH_ATTEMPTS: usize = 3;

/// Logs in as the probe account, recording the TLS certificate's warning.
pub async fn login(
    run: &mut Run,
    at: &Endpoint<'_>,
    user: &str,
    password: &str,
) -> Result<Imap, Failure> {
    let s = Imap::login(at, user, password, run.clock()).await?;
    run.note_tls(s.tls());
    Ok(s)
}

/// Logs in, opens INBOX and fetches one message (adding the probe's own if INBOX is empty).
pub async fn check(
    run: &mut Run,
    at: &Endpoint<'_>,
    user: &str,
    password: &str,
) -> Result<String, Failure> {
    let mut s = login(run, at, user, password).await?;
    let tls = s
        .tls()
        .map_or(String::new(), |t| format!("; {}", t.summary()));
    // The end-to-end checks (one per MTA) deliver to and delete from the same mailbox: its
    // messages may all be expunged between SELECT and FETCH, which says nothing against the
    // store. Ask again, putting the probe's own message back when INBOX went empty.
    let mut exists = 0;
    let mut size = None;
    for _ in 0..FETCH_ATTEMPTS {
        exists = s.select("INBOX").await?.exists;
        if exists == 0 {
            s.append("INBOX", None, None, PROBE_MESSAGE.as_bytes())
                .await?;
            exists = s.select("INBOX").await?.exists;
        }
        let fetched = s.fetch("1", "(RFC822.SIZE BODY.PEEK[])").await?;
        size = fetched.first().and_then(|f| f.body().map(<[u8]>::len));
        if size.is_some() {
            break;
        }
    }
    let size = size.ok_or_else(|| Failure::new("fetch", "FETCH returned no message"))?;
    s.logout().await;
    Ok(format!(
        "{exists} messages in INBOX, fetched {size} bytes{tls}"
    ))
}

//! POP3: greeting, STLS or implicit TLS, USER/PASS, STAT, RETR of the first message.

use mailfleet_mailclient::error::ErrorKind;
use mailfleet_mailclient::pop3::Pop3;
use mailfleet_mailclient::tls::Endpoint;

use crate::outcome::{Failure, Run};

/// Logs in, counts the messages and retrieves the first.
pub async fn check(
    run: &mut Run,
    at: &Endpoint<'_>,
    user: &str,
    password: &str,
) -> Result<String, Failure> {
    let mut c = Pop3::login(at, user, password, run.clock()).await?;
    run.note_tls(c.tls());
    let tls = c
        .tls()
        .map_or(String::new(), |t| format!("; {}", t.summary()));
    let (count, _) = c.stat().await?;
    let mut bytes = 0;
    if count > 0 {
        match c.retr(1).await {
            Ok(m) => bytes = m.len(),
            // The end-to-end check cleans the same probe mailbox over IMAP: a message it
            // expunged after our STAT is gone, which says nothing against POP3.
            Err(e) if matches!(e.kind(), ErrorKind::Err(t) if t.to_ascii_lowercase().contains("expunged")) =>
                {}
            Err(e) => return Err(e.into()),
        }
    }
    let _ = c.quit().await;
    Ok(if count == 0 {
        format!("no messages to retrieve{tls}")
    } else {
        format!("{count} messages, first {bytes} bytes{tls}")
    })
}

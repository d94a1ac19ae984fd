//! IMAP: login, SELECT INBOX, FETCH of a message. A store whose login works but whose
//! mailbox cannot be opened or read is CRITICAL: that is the outage a port check misses.

use futures::TryStreamExt;

use crate::outcome::{Failure, Run};

/// What the probe mailbox holds at least, so FETCH always has something to read.
const PROBE_MESSAGE: &str = "From: probe@mailfleet.invalid\r\nSubject: mailfleet probe (keep)\r\n\r\nKept for mailfleet's IMAP fetch probe.\r\n";

/// An IMAP session on the probe account.
pub type Session = async_imap::Session<tokio::net::TcpStream>;

/// Connects and logs in.
pub async fn login(
    run: &mut Run,
    host: &str,
    port: u16,
    user: &str,
    password: &str,
) -> Result<Session, Failure> {
    let tcp = run
        .step("connect", crate::line::connect(host, port))
        .await?;
    let mut client = async_imap::Client::new(tcp);
    run.step("banner", async {
        match client.read_response().await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err("connection closed before the greeting".to_string()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await?;
    run.step("login", async {
        client.login(user, password).await.map_err(|(e, _)| e)
    })
    .await
}

/// Logs in, opens INBOX and fetches one message (adding the probe's own if INBOX is empty).
pub async fn check(
    run: &mut Run,
    host: &str,
    port: u16,
    user: &str,
    password: &str,
) -> Result<String, Failure> {
    let mut s = login(run, host, port, user, password).await?;
    let mailbox = run.step("select", s.select("INBOX")).await?;
    let mut exists = mailbox.exists;
    if exists == 0 {
        run.step("append", s.append("INBOX", None, None, PROBE_MESSAGE))
            .await?;
        exists = run.step("select", s.select("INBOX")).await?.exists;
    }
    let size = run
        .step("fetch", async {
            let fetched: Vec<_> = s
                .fetch("1", "(RFC822.SIZE BODY.PEEK[])")
                .await?
                .try_collect()
                .await?;
            match fetched.first().and_then(|f| f.body().map(<[u8]>::len)) {
                Some(n) => Ok(n),
                None => Err(async_imap::error::Error::Bad(
                    "FETCH returned no message".into(),
                )),
            }
        })
        .await?;
    let _ = s.logout().await;
    Ok(format!("{exists} messages in INBOX, fetched {size} bytes"))
}

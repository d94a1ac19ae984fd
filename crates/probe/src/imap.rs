//! IMAP: STARTTLS or implicit TLS, login, SELECT INBOX, FETCH of a message. A store whose
//! login works but whose mailbox cannot be opened or read is CRITICAL: that is the outage a
//! port check misses.

use async_imap::imap_proto::{Capability, Response, ResponseCode};
use futures::TryStreamExt;

use crate::outcome::{Failure, Run};
use crate::tls::{Endpoint, Stream, TlsInfo};

/// What the probe mailbox holds at least, so FETCH always has something to read.
const PROBE_MESSAGE: &str = "From: probe@mailfleet.invalid\r\nSubject: mailfleet probe (keep)\r\n\r\nKept for mailfleet's IMAP fetch probe.\r\n";

/// An IMAP session on the probe account.
pub type Session = async_imap::Session<Stream>;

/// Reads the greeting; whether it announces STARTTLS.
async fn greeting(client: &mut async_imap::Client<Stream>) -> Result<bool, String> {
    match client.read_response().await {
        Ok(Some(r)) => Ok(match r.parsed() {
            Response::Data { outcome, .. } => match &outcome.code {
                Some(ResponseCode::Capabilities(caps)) => caps.iter().any(
                    |c| matches!(c, Capability::Atom(a) if a.eq_ignore_ascii_case("STARTTLS")),
                ),
                _ => false,
            },
            _ => false,
        }),
        Ok(None) => Err("connection closed before the greeting".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Connects, upgrades to TLS as the server's settings ask, and logs in.
pub async fn login(
    run: &mut Run,
    at: &Endpoint<'_>,
    user: &str,
    password: &str,
) -> Result<(Session, Option<TlsInfo>), Failure> {
    let (stream, mut tls) = crate::tls::open(run, at).await?;
    let mut client = async_imap::Client::new(stream);
    let offered = run.step("banner", greeting(&mut client)).await?;
    let upgrade = crate::tls::upgrade_with(at, offered).map_err(|m| Failure::new("starttls", m))?;
    if let Some(t) = upgrade {
        run.step(
            "starttls",
            client.run_command_and_check_ok("STARTTLS", None),
        )
        .await?;
        let Stream::Plain(tcp) = client.into_inner() else {
            return Err(Failure::new("starttls", "TLS is already on"));
        };
        let (s, info) = run.step("tls", t.handshake(tcp)).await?;
        crate::tls::note(run, &info);
        tls = Some(info);
        client = async_imap::Client::new(s);
    }
    let session = run
        .step("login", async {
            client.login(user, password).await.map_err(|(e, _)| e)
        })
        .await?;
    Ok((session, tls))
}

/// Logs in, opens INBOX and fetches one message (adding the probe's own if INBOX is empty).
pub async fn check(
    run: &mut Run,
    at: &Endpoint<'_>,
    user: &str,
    password: &str,
) -> Result<String, Failure> {
    let (mut s, tls) = login(run, at, user, password).await?;
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
    let tls = tls.map_or(String::new(), |t| format!("; {}", t.summary()));
    Ok(format!(
        "{exists} messages in INBOX, fetched {size} bytes{tls}"
    ))
}

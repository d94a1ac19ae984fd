//! POP3: greeting, STLS or implicit TLS, USER/PASS, STAT, RETR of the first message. Written
//! by hand: no maintained async POP3 client exists; tested against Dovecot.

use crate::line::{LineConn, LineError};
use crate::outcome::{Failure, Run};
use crate::tls::Endpoint;

/// Longest multi-line answer read for CAPA.
const MAX_CAPA_LINES: usize = 100;

/// Whether CAPA lists STLS (a server without CAPA answers -ERR: no STLS).
async fn offers_stls(c: &mut LineConn) -> Result<bool, LineError> {
    c.send("CAPA").await?;
    if !c.line().await?.starts_with("+OK") {
        return Ok(false);
    }
    let mut stls = false;
    for _ in 0..MAX_CAPA_LINES {
        let l = c.line().await?;
        if l == "." {
            return Ok(stls);
        }
        stls |= l.eq_ignore_ascii_case("STLS");
    }
    Err(LineError::Unexpected("CAPA answer too long".into()))
}

async fn ok(c: &mut LineConn) -> Result<String, LineError> {
    let l = c.line().await?;
    match l.strip_prefix("+OK") {
        Some(rest) => Ok(rest.trim().to_string()),
        None => Err(LineError::Unexpected(l)),
    }
}

/// Logs in, counts the messages and retrieves the first.
pub async fn check(
    run: &mut Run,
    at: &Endpoint<'_>,
    user: &str,
    password: &str,
) -> Result<String, Failure> {
    let (stream, mut tls) = crate::tls::open(run, at).await?;
    let mut c = LineConn::new(stream);
    run.step("banner", ok(&mut c)).await?;
    let offered = if tls.is_none() && at.tls.is_some() {
        run.step("capa", offers_stls(&mut c)).await?
    } else {
        false
    };
    if let Some(t) =
        crate::tls::upgrade_with(at, offered).map_err(|m| Failure::new("starttls", m))?
    {
        run.step("starttls", async {
            c.send("STLS").await?;
            ok(&mut c).await
        })
        .await?;
        let (upgraded, info) = run.step("tls", c.starttls(t)).await?;
        c = upgraded;
        crate::tls::note(run, &info);
        tls = Some(info);
    }
    run.step("login", async {
        c.send(&format!("USER {user}")).await?;
        ok(&mut c).await?;
        c.send(&format!("PASS {password}")).await?;
        ok(&mut c).await
    })
    .await?;
    let stat = run
        .step("stat", async {
            c.send("STAT").await?;
            ok(&mut c).await
        })
        .await?;
    let count: u64 = stat
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let mut bytes = 0;
    if count > 0 {
        bytes = run
            .step("retr", async {
                c.send("RETR 1").await?;
                match ok(&mut c).await {
                    Ok(_) => {}
                    // The end-to-end check cleans the same probe mailbox over IMAP: a message
                    // it expunged after our STAT is gone, which says nothing against POP3.
                    Err(LineError::Unexpected(m))
                        if m.to_ascii_lowercase().contains("expunged") =>
                    {
                        return Ok(0);
                    }
                    Err(e) => return Err(e),
                }
                let mut n = 0usize;
                loop {
                    let l = c.line().await?;
                    if l == "." {
                        return Ok::<usize, LineError>(n);
                    }
                    n += l.len() + 2;
                }
            })
            .await?;
    }
    let _ = c.send("QUIT").await;
    let tls = tls.map_or(String::new(), |t| format!("; {}", t.summary()));
    Ok(if count == 0 {
        format!("no messages to retrieve{tls}")
    } else {
        format!("{count} messages, first {bytes} bytes{tls}")
    })
}

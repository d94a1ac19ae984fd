//! SMTP, submission and LMTP: connect, banner, EHLO/LHLO, STARTTLS or implicit TLS, optional
//! AUTH; and sending a message, for the end-to-end check. Written by hand because the probe
//! must time the banner and each command, which a sending library hides.

use base64::Engine as _;

use crate::line::{LineConn, LineError};
use crate::outcome::{Failure, Run};
use crate::tls::{Endpoint, TlsInfo};

/// What to say on the connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dialog<'a> {
    /// LMTP (LHLO) instead of SMTP (EHLO).
    pub lmtp: bool,
    /// Log in with AUTH PLAIN as this account and password.
    pub auth: Option<(&'a str, &'a str)>,
}

/// An open session after EHLO (and TLS and AUTH when asked), with what it found.
struct Session {
    conn: LineConn,
    banner: String,
    tls: Option<TlsInfo>,
}

fn offers(ehlo: &[String], keyword: &str) -> bool {
    ehlo.iter().any(|l| {
        l.split_whitespace()
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case(keyword))
    })
}

fn auth_mechanisms(ehlo: &[String]) -> Vec<String> {
    ehlo.iter()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.next()
                .filter(|k| k.eq_ignore_ascii_case("AUTH"))
                .map(|_| w.map(str::to_ascii_uppercase).collect::<Vec<_>>())
        })
        .flatten()
        .collect()
}

async fn hello(c: &mut LineConn, lmtp: bool) -> Result<Vec<String>, LineError> {
    c.send(if lmtp {
        "LHLO probe.mailfleet"
    } else {
        "EHLO probe.mailfleet"
    })
    .await?;
    c.expect_lines(2).await
}

async fn session(run: &mut Run, at: &Endpoint<'_>, d: &Dialog<'_>) -> Result<Session, Failure> {
    let (stream, mut tls) = crate::tls::open(run, at).await?;
    let mut c = LineConn::new(stream);
    let banner = run.step("banner", c.expect(2)).await?;
    let mut ehlo = run.step("ehlo", hello(&mut c, d.lmtp)).await?;
    let upgrade = crate::tls::upgrade_with(at, offers(&ehlo, "STARTTLS"))
        .map_err(|m| Failure::new("starttls", m))?;
    if let Some(t) = upgrade {
        run.step("starttls", async {
            c.send("STARTTLS").await?;
            c.expect(2).await
        })
        .await?;
        let (upgraded, info) = run.step("tls", c.starttls(t)).await?;
        c = upgraded;
        crate::tls::note(run, &info);
        tls = Some(info);
        ehlo = run.step("ehlo", hello(&mut c, d.lmtp)).await?;
    }
    if let Some((user, password)) = d.auth {
        let mechs = auth_mechanisms(&ehlo);
        if !mechs.iter().any(|m| m == "PLAIN") {
            return Err(Failure::new(
                "auth",
                format!(
                    "the server offers no AUTH PLAIN{} (offers: {})",
                    if tls.is_none() { " without TLS" } else { "" },
                    if mechs.is_empty() {
                        "none".into()
                    } else {
                        mechs.join(" ")
                    }
                ),
            ));
        }
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        run.step("auth", async {
            c.send(&format!("AUTH PLAIN {token}")).await?;
            c.expect(2).await
        })
        .await?;
    }
    Ok(Session {
        conn: c,
        banner,
        tls,
    })
}

/// Checks a server greets and answers EHLO (LHLO for LMTP), with TLS and AUTH as asked.
pub async fn check(run: &mut Run, at: &Endpoint<'_>, d: &Dialog<'_>) -> Result<String, Failure> {
    let mut s = session(run, at, d).await?;
    let _ = s.conn.send("QUIT").await;
    let mut msg = format!("banner: {}", s.banner.chars().take(60).collect::<String>());
    if let Some(t) = &s.tls {
        msg.push_str(&format!("; {}", t.summary()));
    }
    if let Some((user, _)) = d.auth {
        msg.push_str(&format!("; authenticated as {user}"));
    }
    Ok(msg)
}

/// Sends one message (headers and body as given, CRLF line ends) from `from` to `to`.
pub async fn send(
    run: &mut Run,
    at: &Endpoint<'_>,
    d: &Dialog<'_>,
    from: &str,
    to: &str,
    message: &str,
) -> Result<(), Failure> {
    send_to(run, at, d, from, &[to], message).await
}

/// Sends one message to several recipients (each RCPT must be accepted).
pub async fn send_to(
    run: &mut Run,
    at: &Endpoint<'_>,
    d: &Dialog<'_>,
    from: &str,
    to: &[&str],
    message: &str,
) -> Result<(), Failure> {
    let mut c = session(run, at, d).await?.conn;
    run.step("envelope", async {
        c.send(&format!("MAIL FROM:<{from}>")).await?;
        c.expect(2).await?;
        for rcpt in to {
            c.send(&format!("RCPT TO:<{rcpt}>")).await?;
            c.expect(2).await?;
        }
        Ok::<_, LineError>(String::new())
    })
    .await?;
    run.step("data", async {
        c.send("DATA").await?;
        c.expect(3).await?;
        // Dot-stuffing: a line starting with '.' gets another.
        let mut body = String::with_capacity(message.len() + 8);
        for line in message.split("\r\n") {
            if line.starts_with('.') {
                body.push('.');
            }
            body.push_str(line);
            body.push_str("\r\n");
        }
        body.push_str(".\r\n");
        c.send_raw(body.as_bytes()).await?;
        c.expect(2).await.map_err(|e| match e {
            LineError::Unexpected(m) => LineError::Unexpected(format!("message refused: {m}")),
            e => e,
        })
    })
    .await?;
    let _ = c.send("QUIT").await;
    Ok(())
}

//! POP3 (RFC 1939): greeting, STLS (RFC 2595) or implicit TLS, USER/PASS, STAT, UIDL, RETR,
//! DELE. Spoken by hand: no maintained async POP3 client exists; tested against Dovecot.

use crate::clock::Clock;
use crate::error::{ErrorKind, MailError};
use crate::line::{LineConn, open, upgrade_with};
use crate::tls::{Endpoint, TlsInfo};

/// Longest multi-line answer read for CAPA and UIDL, in lines.
const MAX_LIST_LINES: usize = 1_000_000;

/// Largest message RETR reads: a server sending without end cannot exhaust memory.
pub const MAX_MESSAGE: usize = 256 << 20;

/// An open, logged-in POP3 session.
pub struct Pop3 {
    conn: LineConn,
    clock: Clock,
    tls: Option<TlsInfo>,
}

/// `+OK text` gives the text; `-ERR text` the server's refusal.
async fn ok(c: &mut LineConn) -> Result<String, ErrorKind> {
    let l = c.line().await?;
    if let Some(rest) = l.strip_prefix("+OK") {
        return Ok(rest.trim().to_string());
    }
    match l.strip_prefix("-ERR") {
        Some(rest) => Err(ErrorKind::Err(rest.trim().to_string())),
        None => Err(ErrorKind::Protocol(format!("not a POP3 answer: {l:?}"))),
    }
}

/// The lines of a multi-line answer up to the `.` line, dot-unstuffed, with CRLF ends.
async fn multiline(c: &mut LineConn, max_bytes: usize) -> Result<Vec<u8>, ErrorKind> {
    let mut out = Vec::new();
    let mut line = Vec::new();
    for _ in 0..MAX_LIST_LINES {
        line.clear();
        c.raw_line(&mut line).await?;
        let body = line
            .strip_suffix(b"\r\n")
            .or_else(|| line.strip_suffix(b"\n"))
            .unwrap_or(&line);
        if body == b"." {
            return Ok(out);
        }
        let body = body.strip_prefix(b".").unwrap_or(body);
        if out.len() + body.len() + 2 > max_bytes {
            return Err(ErrorKind::Protocol(format!(
                "answer larger than {max_bytes} bytes"
            )));
        }
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    }
    Err(ErrorKind::Protocol("answer of too many lines".into()))
}

/// Whether CAPA lists STLS (a server without CAPA answers -ERR: no STLS).
async fn offers_stls(c: &mut LineConn) -> Result<bool, ErrorKind> {
    c.send("CAPA").await?;
    if ok(c).await.is_err() {
        return Ok(false);
    }
    let capa = multiline(c, 64 << 10).await?;
    Ok(String::from_utf8_lossy(&capa)
        .lines()
        .any(|l| l.trim().eq_ignore_ascii_case("STLS")))
}

impl Pop3 {
    /// Connects, reads the greeting, upgrades with STLS as the endpoint's settings ask, and
    /// logs in with USER and PASS.
    pub async fn login(
        at: &Endpoint<'_>,
        user: &str,
        password: &str,
        clock: &Clock,
    ) -> Result<Pop3, MailError> {
        let (stream, mut tls) = open(at, clock).await?;
        let mut c = LineConn::new(stream);
        clock.step("banner", ok(&mut c)).await?;
        let offered = if tls.is_none() && at.tls.is_some() {
            clock.step("capa", offers_stls(&mut c)).await?
        } else {
            false
        };
        if let Some(t) = upgrade_with(at, offered, "starttls")? {
            clock
                .step("starttls", async {
                    c.send("STLS").await?;
                    ok(&mut c).await
                })
                .await?;
            let (upgraded, info) = clock.step("tls", c.starttls(t)).await?;
            c = upgraded;
            tls = Some(info);
        }
        clock
            .step("login", async {
                c.send(&format!("USER {user}")).await?;
                ok(&mut c).await?;
                c.send(&format!("PASS {password}")).await?;
                ok(&mut c).await
            })
            .await?;
        Ok(Pop3 {
            conn: c,
            clock: clock.clone(),
            tls,
        })
    }

    /// What the TLS handshake found, when the session is encrypted.
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    async fn single(&mut self, step: &'static str, command: &str) -> Result<String, MailError> {
        let c = &mut self.conn;
        self.clock
            .step(step, async {
                c.send(command).await?;
                ok(c).await
            })
            .await
    }

    /// `STAT`: messages and their total size.
    pub async fn stat(&mut self) -> Result<(u64, u64), MailError> {
        let text = self.single("stat", "STAT").await?;
        let mut w = text.split_whitespace().map(str::parse::<u64>);
        match (w.next(), w.next()) {
            (Some(Ok(n)), Some(Ok(size))) => Ok((n, size)),
            _ => Err(MailError::protocol(
                "stat",
                format!("not a STAT answer: {text:?}"),
            )),
        }
    }

    /// `UIDL`: each message's number and unique ID.
    pub async fn uidl(&mut self) -> Result<Vec<(u32, String)>, MailError> {
        let c = &mut self.conn;
        let raw = self
            .clock
            .step("uidl", async {
                c.send("UIDL").await?;
                ok(c).await?;
                multiline(c, 256 << 20).await
            })
            .await?;
        let mut out = Vec::new();
        for l in String::from_utf8_lossy(&raw).lines() {
            let mut w = l.split_whitespace();
            match (w.next().and_then(|n| n.parse().ok()), w.next()) {
                (Some(n), Some(id)) => out.push((n, id.to_string())),
                _ => {
                    return Err(MailError::protocol(
                        "uidl",
                        format!("not a UIDL line: {l:?}"),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// `RETR n`: the message, dot-unstuffed, with CRLF line ends.
    pub async fn retr(&mut self, n: u32) -> Result<Vec<u8>, MailError> {
        let c = &mut self.conn;
        self.clock
            .step("retr", async {
                c.send(&format!("RETR {n}")).await?;
                ok(c).await?;
                multiline(c, MAX_MESSAGE).await
            })
            .await
    }

    /// `DELE n`: marks the message deleted (removed at QUIT).
    pub async fn dele(&mut self, n: u32) -> Result<(), MailError> {
        self.single("dele", &format!("DELE {n}")).await.map(|_| ())
    }

    /// `QUIT`: deletions take effect (not timed as a step).
    pub async fn quit(mut self) -> Result<(), MailError> {
        self.clock = self.clock.quiet();
        self.single("quit", "QUIT").await.map(|_| ())
    }
}

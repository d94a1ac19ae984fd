//! SMTP and LMTP: banner, EHLO/LHLO, STARTTLS or implicit TLS, AUTH PLAIN, and MAIL, RCPT and
//! DATA (for LMTP one answer per accepted recipient). Spoken by hand: the probes time the
//! banner and each command, which a sending library hides, and no crate speaks LMTP.

use base64::Engine as _;

use crate::clock::Clock;
use crate::error::{ErrorKind, MailError};
use crate::line::{LineConn, open, upgrade_with};
use crate::reply::{self, MAX_REPLY_LINES, Reply};
use crate::tls::{Endpoint, TlsInfo};

/// How to greet.
#[derive(Debug, Clone)]
pub struct Options {
    /// LMTP (LHLO) instead of SMTP (EHLO).
    pub lmtp: bool,
    /// The name given in EHLO/LHLO.
    pub helo_name: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            lmtp: false,
            helo_name: "mailfleet.invalid".into(),
        }
    }
}

impl Options {
    /// LMTP with the default name.
    pub fn lmtp() -> Self {
        Options {
            lmtp: true,
            ..Options::default()
        }
    }
}

/// An open SMTP or LMTP session, greeted (and upgraded to TLS as the endpoint asks).
pub struct Smtp {
    conn: LineConn,
    clock: Clock,
    options: Options,
    banner: String,
    extensions: Vec<String>,
    tls: Option<TlsInfo>,
    /// Recipients accepted since MAIL, for LMTP's per-recipient DATA replies.
    accepted: Vec<String>,
}

async fn read_reply(c: &mut LineConn) -> Result<Reply, ErrorKind> {
    let mut lines = Vec::new();
    for _ in 0..MAX_REPLY_LINES {
        let l = c.line().await?;
        let (code, more, text) = reply::parse_line(&l).map_err(ErrorKind::Protocol)?;
        lines.push(text.to_string());
        if !more {
            return Ok(Reply { code, lines });
        }
    }
    Err(ErrorKind::Protocol(format!(
        "reply of more than {MAX_REPLY_LINES} lines"
    )))
}

/// A reply of the wanted class (2 for 2xx, 3 for 3xx), else the server's refusal.
async fn expect(c: &mut LineConn, class: u16) -> Result<Reply, ErrorKind> {
    let r = read_reply(c).await?;
    if r.code / 100 == class {
        Ok(r)
    } else {
        Err(ErrorKind::Reply {
            code: r.code,
            text: r.text(),
        })
    }
}

/// A reply: `Ok(Ok)` of the wanted class, `Ok(Err)` the server's refusal; `Err` when no
/// reply could be read.
async fn answer(c: &mut LineConn, class: u16) -> Result<Result<(), ErrorKind>, ErrorKind> {
    let r = read_reply(c).await?;
    Ok(if r.code / 100 == class {
        Ok(())
    } else {
        Err(ErrorKind::Reply {
            code: r.code,
            text: r.text(),
        })
    })
}

/// EHLO (LHLO); the extensions listed (the first line is the server's name).
async fn hello(
    c: &mut LineConn,
    clock: &Clock,
    options: &Options,
) -> Result<Vec<String>, MailError> {
    let verb = if options.lmtp { "LHLO" } else { "EHLO" };
    let line = format!("{verb} {}", options.helo_name);
    let r = clock
        .step("ehlo", async {
            c.send(&line).await?;
            expect(c, 2).await
        })
        .await?;
    Ok(r.lines.into_iter().skip(1).collect())
}

impl Smtp {
    /// Connects, reads the banner, says EHLO (LHLO), and upgrades with STARTTLS as the
    /// endpoint's TLS settings ask (saying EHLO again after).
    pub async fn connect(
        at: &Endpoint<'_>,
        options: Options,
        clock: &Clock,
    ) -> Result<Smtp, MailError> {
        let (stream, mut tls) = open(at, clock).await?;
        let mut conn = LineConn::new(stream);
        let banner = clock.step("banner", expect(&mut conn, 2)).await?.text();
        let mut extensions = hello(&mut conn, clock, &options).await?;
        if let Some(t) = upgrade_with(at, reply::offers(&extensions, "STARTTLS"), "starttls")? {
            clock
                .step("starttls", async {
                    conn.send("STARTTLS").await?;
                    expect(&mut conn, 2).await
                })
                .await?;
            let (upgraded, info) = clock.step("tls", conn.starttls(t)).await?;
            conn = upgraded;
            tls = Some(info);
            extensions = hello(&mut conn, clock, &options).await?;
        }
        Ok(Smtp {
            conn,
            clock: clock.clone(),
            options,
            banner,
            extensions,
            tls,
            accepted: Vec::new(),
        })
    }

    /// The banner's text.
    pub fn banner(&self) -> &str {
        &self.banner
    }

    /// The extensions the last EHLO/LHLO listed (`PIPELINING`, `AUTH PLAIN LOGIN`...).
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// Whether the server offers this extension.
    pub fn offers(&self, keyword: &str) -> bool {
        reply::offers(&self.extensions, keyword)
    }

    /// What the TLS handshake found, when the session is encrypted.
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    /// AUTH PLAIN as `user` (RFC 4616); refused before sending anything when the server does
    /// not offer PLAIN.
    pub async fn auth_plain(&mut self, user: &str, password: &str) -> Result<(), MailError> {
        let mechs = reply::auth_mechanisms(&self.extensions);
        if !mechs.iter().any(|m| m == "PLAIN") {
            return Err(MailError::protocol(
                "auth",
                format!(
                    "the server offers no AUTH PLAIN{} (offers: {})",
                    if self.tls.is_none() {
                        " without TLS"
                    } else {
                        ""
                    },
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
        let c = &mut self.conn;
        self.clock
            .step("auth", async {
                c.send(&format!("AUTH PLAIN {token}")).await?;
                expect(c, 2).await
            })
            .await?;
        Ok(())
    }

    /// `MAIL FROM:<from>`.
    pub async fn mail_from(&mut self, from: &str) -> Result<(), MailError> {
        self.accepted.clear();
        let line = format!("MAIL FROM:<{from}>");
        self.command("mail", &line, 2).await.map(|_| ())
    }

    /// `RCPT TO:<to>`; a refused recipient is an error with the server's reply, and the
    /// session goes on.
    pub async fn rcpt_to(&mut self, to: &str) -> Result<(), MailError> {
        let line = format!("RCPT TO:<{to}>");
        self.command("rcpt", &line, 2).await?;
        self.accepted.push(to.to_string());
        Ok(())
    }

    async fn command(
        &mut self,
        step: &'static str,
        line: &str,
        class: u16,
    ) -> Result<Reply, MailError> {
        let c = &mut self.conn;
        self.clock
            .step(step, async {
                c.send(line).await?;
                expect(c, class).await
            })
            .await
    }

    /// DATA with the message (CRLF line ends and dot-stuffing added here). SMTP: one result
    /// for all recipients; LMTP: one per accepted recipient, in RCPT order.
    pub async fn data(
        &mut self,
        message: &[u8],
    ) -> Result<Vec<(String, Result<(), MailError>)>, MailError> {
        self.command("data", "DATA", 3).await?;
        let body = reply::dot_stuffed(message);
        let c = &mut self.conn;
        let recipients = std::mem::take(&mut self.accepted);
        let per_recipient = self.options.lmtp;
        let answers = self
            .clock
            .step("data", async {
                c.send_raw(&body).await?;
                let n = if per_recipient { recipients.len() } else { 1 };
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    out.push(answer(c, 2).await?);
                }
                Ok(out)
            })
            .await?;
        let names: Vec<String> = if per_recipient {
            recipients
        } else {
            vec![recipients.join(",")]
        };
        Ok(names
            .into_iter()
            .zip(answers)
            .map(|(r, a)| (r, a.map_err(|k| MailError::new("data", k))))
            .collect())
    }

    /// One message to every recipient: each RCPT and the DATA must be accepted.
    pub async fn send(&mut self, from: &str, to: &[&str], message: &[u8]) -> Result<(), MailError> {
        self.mail_from(from).await?;
        for rcpt in to {
            self.rcpt_to(rcpt).await?;
        }
        for (_, r) in self.data(message).await? {
            r?;
        }
        Ok(())
    }

    /// `RSET`: forgets the transaction begun.
    pub async fn reset(&mut self) -> Result<(), MailError> {
        self.accepted.clear();
        self.command("rset", "RSET", 2).await.map(|_| ())
    }

    /// `QUIT`, best effort and not timed as a step: the session ends either way.
    pub async fn quit(mut self) {
        self.clock = self.clock.quiet();
        let _ = self.command("quit", "QUIT", 2).await;
    }
}

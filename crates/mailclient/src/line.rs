//! A line-oriented connection for the text protocols spoken by hand (SMTP, LMTP, POP3):
//! lines are capped in length, so a server sending junk cannot make the client buffer
//! without bound; and connecting (with implicit TLS where the port asks for it).

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::clock::Clock;
use crate::error::{ErrorKind, MailError};
use crate::tls::{Endpoint, Stream, Tls, TlsInfo};

/// Longest line accepted (RFC 5321 allows 512 for replies; leave room).
pub const MAX_LINE: usize = 4096;

/// A connection reading lines.
pub struct LineConn {
    io: BufReader<Stream>,
}

impl LineConn {
    /// Lines over an open connection.
    pub fn new(stream: Stream) -> Self {
        LineConn {
            io: BufReader::new(stream),
        }
    }

    /// Upgrades to TLS once the server agreed to STARTTLS/STLS.
    pub async fn starttls(self, tls: &Tls) -> Result<(Self, TlsInfo), ErrorKind> {
        // Bytes after the server's go-ahead would be read as if they came over TLS: the
        // plaintext-injection attack on STARTTLS. Refuse them.
        if !self.io.buffer().is_empty() {
            return Err(ErrorKind::Protocol(
                "the server sent data after agreeing to start TLS".into(),
            ));
        }
        let Stream::Plain(tcp) = self.io.into_inner() else {
            return Err(ErrorKind::Protocol("TLS is already on".into()));
        };
        let (s, info) = tls.handshake(tcp).await?;
        Ok((Self::new(s), info))
    }

    /// Whether the connection is TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.io.get_ref(), Stream::Tls(_))
    }

    /// One line without its CRLF.
    pub async fn line(&mut self) -> Result<String, ErrorKind> {
        let mut buf = Vec::new();
        self.raw_line(&mut buf).await?;
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// One line as bytes, with its line end, appended to `buf`.
    pub async fn raw_line(&mut self, buf: &mut Vec<u8>) -> Result<usize, ErrorKind> {
        let n = (&mut self.io)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', buf)
            .await?;
        if n == 0 {
            return Err(ErrorKind::Closed);
        }
        if n > MAX_LINE {
            return Err(ErrorKind::Protocol(format!(
                "line longer than {MAX_LINE} bytes"
            )));
        }
        Ok(n)
    }

    /// Sends a command line (CRLF added).
    pub async fn send(&mut self, line: &str) -> Result<(), ErrorKind> {
        let s = self.io.get_mut();
        s.write_all(line.as_bytes()).await?;
        s.write_all(b"\r\n").await?;
        Ok(())
    }

    /// Sends raw bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ErrorKind> {
        self.io.get_mut().write_all(bytes).await?;
        Ok(())
    }
}

/// Connects; an address skips the resolver (whose lookups run on a blocking thread).
pub async fn tcp(host: &str, port: u16) -> std::io::Result<TcpStream> {
    let s = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => TcpStream::connect((ip, port)).await,
        Err(_) => TcpStream::connect((host, port)).await,
    }?;
    // Commands are short and answered one at a time: Nagle only adds latency.
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// Connects (step `connect`) and, for an implicit-TLS port, shakes hands (step `tls`).
pub async fn open(
    at: &Endpoint<'_>,
    clock: &Clock,
) -> Result<(Stream, Option<TlsInfo>), MailError> {
    let tcp = clock
        .step("connect", async { Ok(tcp(at.host, at.port).await?) })
        .await?;
    match at.tls.filter(|_| at.implicit) {
        None => Ok((Stream::Plain(tcp), None)),
        Some(tls) => {
            let (s, info) = clock
                .step("tls", async { Ok(tls.handshake(tcp).await?) })
                .await?;
            Ok((s, Some(info)))
        }
    }
}

/// The TLS settings to upgrade a plain connection with, given whether the server offers
/// STARTTLS; `None`: stay in clear text (implicit TLS is already on, or the settings say so).
pub fn upgrade_with<'a>(
    at: &Endpoint<'a>,
    offered: bool,
    step: &'static str,
) -> Result<Option<&'a Tls>, MailError> {
    if at.implicit {
        return Ok(None);
    }
    match crate::tls::should_upgrade(at.tls, offered) {
        Ok(true) => Ok(at.tls),
        Ok(false) => Ok(None),
        Err(m) => Err(MailError::protocol(step, m)),
    }
}

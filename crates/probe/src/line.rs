//! A line-oriented TCP connection for the text protocols probed by hand (SMTP, LMTP, POP3):
//! lines are capped in length, so a server sending junk cannot make the probe buffer
//! without bound.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::tls::{Stream, Tls, TlsInfo};

/// Longest line accepted (RFC 5321 allows 512 for replies; leave room).
const MAX_LINE: usize = 4096;

/// Why a protocol exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// Network error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server closed the connection.
    #[error("connection closed by the server")]
    Closed,
    /// A line over the limit.
    #[error("line longer than {MAX_LINE} bytes")]
    TooLong,
    /// The server answered, but not what the probe needs.
    #[error("{0}")]
    Unexpected(String),
}

/// A connection reading lines.
pub struct LineConn {
    io: BufReader<Stream>,
}

impl LineConn {
    /// Connects.
    pub async fn connect(host: &str, port: u16) -> Result<Self, LineError> {
        let s = connect(host, port).await?;
        s.set_nodelay(true)?;
        Ok(Self::new(Stream::Plain(s)))
    }

    /// Lines over an open connection.
    pub fn new(stream: Stream) -> Self {
        LineConn {
            io: BufReader::new(stream),
        }
    }

    /// Upgrades to TLS once the server agreed to STARTTLS/STLS.
    pub async fn starttls(self, tls: &Tls) -> Result<(Self, TlsInfo), LineError> {
        // Bytes after the server's go-ahead would be read as if they came over TLS: the
        // plaintext-injection attack on STARTTLS. Refuse them.
        if !self.io.buffer().is_empty() {
            return Err(LineError::Unexpected(
                "the server sent data after agreeing to start TLS".into(),
            ));
        }
        let Stream::Plain(tcp) = self.io.into_inner() else {
            return Err(LineError::Unexpected("TLS is already on".into()));
        };
        let (s, info) = tls.handshake(tcp).await?;
        Ok((Self::new(s), info))
    }

    /// One line without its CRLF.
    pub async fn line(&mut self) -> Result<String, LineError> {
        let mut buf = Vec::new();
        let n = (&mut self.io)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .await?;
        if n == 0 {
            return Err(LineError::Closed);
        }
        if n > MAX_LINE {
            return Err(LineError::TooLong);
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Sends a command line (CRLF added).
    pub async fn send(&mut self, line: &str) -> Result<(), LineError> {
        let s = self.io.get_mut();
        s.write_all(line.as_bytes()).await?;
        s.write_all(b"\r\n").await?;
        Ok(())
    }

    /// Sends raw bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), LineError> {
        self.io.get_mut().write_all(bytes).await?;
        Ok(())
    }

    /// An SMTP/LMTP reply: its code and text, multi-line replies joined.
    pub async fn reply(&mut self) -> Result<(u16, String), LineError> {
        let (code, lines) = self.reply_lines().await?;
        Ok((code, lines.join(" ")))
    }

    /// An SMTP/LMTP reply: its code and each line's text.
    pub async fn reply_lines(&mut self) -> Result<(u16, Vec<String>), LineError> {
        let mut text = Vec::new();
        for _ in 0..100 {
            let l = self.line().await?;
            let code = l
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .ok_or_else(|| LineError::Unexpected(format!("not a reply: {l:?}")))?;
            text.push(l.get(4..).unwrap_or("").to_string());
            if l.as_bytes().get(3) != Some(&b'-') {
                return Ok((code, text));
            }
        }
        Err(LineError::Unexpected("reply of more than 100 lines".into()))
    }

    /// A reply that must have this code's class (2 for 2xx...).
    pub async fn expect(&mut self, class: u16) -> Result<String, LineError> {
        Ok(self.expect_lines(class).await?.join(" "))
    }

    /// A reply that must have this code's class, line by line.
    pub async fn expect_lines(&mut self, class: u16) -> Result<Vec<String>, LineError> {
        let (code, lines) = self.reply_lines().await?;
        if code / 100 == class {
            Ok(lines)
        } else {
            Err(LineError::Unexpected(format!("{code} {}", lines.join(" "))))
        }
    }
}

/// Connects; an address skips the resolver (whose lookups run on a blocking thread).
pub async fn connect(host: &str, port: u16) -> std::io::Result<TcpStream> {
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => TcpStream::connect((ip, port)).await,
        Err(_) => TcpStream::connect((host, port)).await,
    }
}

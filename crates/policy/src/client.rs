//! A client of the policy delegation protocol (any server: ours or a peer's), for the load
//! generator and the tests: requests encoded and replies read by `policy-proto`.

use std::net::SocketAddr;
use std::time::Duration;

use mailfleet_policy_proto::policy::{Action, MAX_LINE, ReplyReader, encode_request};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::error::PolicyError;

/// One connection to a policy server (Postfix keeps one per smtpd process and asks in turn).
pub struct PolicyClient {
    conn: BufReader<TcpStream>,
    timeout: Duration,
    line: String,
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> PolicyError + '_ {
    move |e| PolicyError::io(what)(e)
}

impl PolicyClient {
    /// Connects; each answer must come within `timeout`.
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Self, PolicyError> {
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| io("connecting")(std::io::ErrorKind::TimedOut.into()))?
            .map_err(PolicyError::io(format!("connecting to {addr}")))?;
        let _ = tcp.set_nodelay(true);
        Ok(PolicyClient {
            conn: BufReader::new(tcp),
            timeout,
            line: String::with_capacity(128),
        })
    }

    /// Sends one request and reads its answer.
    pub async fn ask(&mut self, attributes: &[(&str, &str)]) -> Result<Action, PolicyError> {
        let request = encode_request(attributes);
        self.send_raw(request.as_bytes()).await
    }

    /// Sends request bytes as they are and reads the answer (`Closed` when the server hangs
    /// up instead).
    pub async fn send_raw(&mut self, request: &[u8]) -> Result<Action, PolicyError> {
        self.conn
            .get_mut()
            .write_all(request)
            .await
            .map_err(io("sending a request"))?;
        let mut reader = ReplyReader::default();
        loop {
            self.line.clear();
            let mut limited = (&mut self.conn).take(MAX_LINE as u64);
            let read = limited.read_line(&mut self.line);
            let n = tokio::time::timeout(self.timeout, read)
                .await
                .map_err(|_| io("reading an answer")(std::io::ErrorKind::TimedOut.into()))?
                .map_err(io("reading an answer"))?;
            if n == 0 {
                return Err(io("reading an answer")(
                    std::io::ErrorKind::UnexpectedEof.into(),
                ));
            }
            let line = self.line.trim_end_matches('\n');
            match reader.line(line) {
                Ok(Some(action)) => return Ok(action),
                Ok(None) => {}
                Err(e) => return Err(io("reading an answer")(std::io::Error::other(e))),
            }
        }
    }
}

//! HTTP(S): a GET of the server's `http_path` (webmail, admin console, proxy), timed to the
//! status line; 2xx and 3xx are OK.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::outcome::{Failure, Run};
use crate::tls::Endpoint;

/// GETs `path` and checks the status.
pub async fn check(run: &mut Run, at: &Endpoint<'_>, path: &str) -> Result<String, Failure> {
    let (host, port) = (at.host, at.port);
    let (mut s, tls) = crate::tls::open(run, at).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: mailfleet-probe\r\nConnection: close\r\n\r\n"
    );
    let status = run
        .step("response", async {
            s.write_all(request.as_bytes()).await?;
            let mut r = BufReader::new(&mut s);
            let mut line = String::new();
            (&mut r).take(4096).read_line(&mut line).await?;
            Ok::<String, std::io::Error>(line.trim().to_string())
        })
        .await?;
    let code: u16 = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| Failure::new("response", format!("not an HTTP status line: {status:?}")))?;
    if (200..400).contains(&code) {
        let tls = tls.map_or(String::new(), |t| format!("; {}", t.summary()));
        Ok(format!("GET {path}: {status}{tls}"))
    } else {
        Err(Failure::new("response", format!("GET {path}: {status}")))
    }
}

//! HTTP: a GET of the server's `http_path` (webmail, admin console, proxy), timed to the
//! status line; 2xx and 3xx are OK. Plain http only for now (TLS comes with the TLS probes).

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::outcome::{Failure, Run};

/// GETs `path` and checks the status.
pub async fn check(run: &mut Run, host: &str, port: u16, path: &str) -> Result<String, Failure> {
    let mut s = run
        .step("connect", crate::line::connect(host, port))
        .await?;
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
        Ok(format!("GET {path}: {status}"))
    } else {
        Err(Failure::new("response", format!("GET {path}: {status}")))
    }
}

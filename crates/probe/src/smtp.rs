//! SMTP, submission and LMTP: connect, banner, EHLO/LHLO; and sending a message, for the
//! end-to-end check. Written by hand because the probe must time the banner and each
//! command, which a sending library hides.

use crate::line::{LineConn, LineError};
use crate::outcome::{Failure, Run};

/// Checks a server greets and answers EHLO (LHLO for LMTP).
pub async fn check(run: &mut Run, host: &str, port: u16, lmtp: bool) -> Result<String, Failure> {
    let mut c = run.step("connect", LineConn::connect(host, port)).await?;
    let banner = run.step("banner", c.expect(2)).await?;
    let hello = if lmtp {
        "LHLO probe.mailfleet"
    } else {
        "EHLO probe.mailfleet"
    };
    run.step("ehlo", async {
        c.send(hello).await?;
        c.expect(2).await
    })
    .await?;
    let _ = c.send("QUIT").await;
    Ok(format!(
        "banner: {}",
        banner.chars().take(60).collect::<String>()
    ))
}

/// Sends one message (headers and body as given, CRLF line ends) from `from` to `to`.
pub async fn send(
    run: &mut Run,
    host: &str,
    port: u16,
    from: &str,
    to: &str,
    message: &str,
) -> Result<(), Failure> {
    let mut c = run.step("connect", LineConn::connect(host, port)).await?;
    run.step("banner", c.expect(2)).await?;
    run.step("ehlo", async {
        c.send("EHLO probe.mailfleet").await?;
        c.expect(2).await
    })
    .await?;
    run.step("envelope", async {
        c.send(&format!("MAIL FROM:<{from}>")).await?;
        c.expect(2).await?;
        c.send(&format!("RCPT TO:<{to}>")).await?;
        c.expect(2).await
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

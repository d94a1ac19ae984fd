//! POP3: greeting, USER/PASS, STAT, RETR of the first message. Written by hand: no maintained
//! async POP3 client exists; tested against Dovecot.

use crate::line::{LineConn, LineError};
use crate::outcome::{Failure, Run};

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
    host: &str,
    port: u16,
    user: &str,
    password: &str,
) -> Result<String, Failure> {
    let mut c = run.step("connect", LineConn::connect(host, port)).await?;
    run.step("banner", ok(&mut c)).await?;
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
                ok(&mut c).await?;
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
    Ok(if count == 0 {
        "no messages to retrieve".to_string()
    } else {
        format!("{count} messages, first {bytes} bytes")
    })
}

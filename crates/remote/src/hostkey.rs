//! The fingerprints a server's SSH host key has, for the error that refuses it: the admin
//! compares them with the server's own (`ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub`).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

use crate::SshTarget;

/// What `ssh-keyscan` then `ssh-keygen -l` say of the host's keys, or why they could not say.
pub async fn fingerprints(target: &SshTarget, timeout: Duration) -> String {
    match tokio::time::timeout(timeout, scan(target, timeout)).await {
        Ok(Ok(s)) if !s.is_empty() => s,
        Ok(Ok(_)) => "no key (ssh-keyscan got none)".into(),
        Ok(Err(e)) => format!("a key that could not be read ({e})"),
        Err(_) => "a key that could not be read in time".into(),
    }
}

async fn scan(target: &SshTarget, timeout: Duration) -> std::io::Result<String> {
    let mut keyscan = Command::new("ssh-keyscan");
    keyscan
        .arg("-T")
        .arg(timeout.as_secs().max(1).to_string())
        .arg("-p")
        .arg(target.port.unwrap_or(22).to_string())
        .arg("--")
        .arg(&target.host)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let keys = keyscan.output().await?.stdout;
    let mut keygen = Command::new("ssh-keygen")
        .args(["-l", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    if let Some(mut stdin) = keygen.stdin.take() {
        stdin.write_all(&keys).await?;
    }
    let out = keygen.wait_with_output().await?;
    // `256 SHA256:abc... [host]:port (ED25519)`: the size, the hash and the type are enough.
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(format!(
                "{} {}",
                f.last()?.trim_matches(['(', ')']),
                f.get(1)?
            ))
        })
        .collect::<Vec<_>>()
        .join(", "))
}

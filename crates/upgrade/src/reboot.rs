//! After an update: whether the server needs a reboot (`/run/reboot-required`, which Debian's
//! packages leave for a new kernel or libc, or a newer kernel in `/boot` than the running
//! one), the reboot done with the server's configured command, and the wait until it answers
//! again, booted anew. Without a reboot command the need is reported and left to the admin.

use std::time::Duration;

use mailfleet_core::Server;
use mailfleet_remote::{Cmd, Reach};

/// Prints `reason TEXT` per reason to reboot (under the package root `$1`, or `/`), then the
/// boot ID. A fixed script: the root arrives as an argument.
const LOOK: &str = r#"root=$1
[ -e "$root/run/reboot-required" ] && echo "reason $root/run/reboot-required is there"
new=$(ls "$root"/boot/vmlinuz-* 2>/dev/null | sed 's#.*/vmlinuz-##' | sort -V | tail -n 1)
[ -n "$new" ] && [ "$new" != "$(uname -r)" ] && echo "reason kernel $new is installed, $(uname -r) runs"
cat /proc/sys/kernel/random/boot_id
exit 0"#;

/// What one look found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Look {
    /// Why a reboot is needed (none: it is not).
    pub reasons: Vec<String>,
    /// The current boot's ID.
    pub boot_id: String,
}

impl Look {
    /// Reads the look script's output.
    pub fn parse(out: &str) -> Look {
        let mut reasons = Vec::new();
        let mut boot_id = String::new();
        for l in out.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match l.strip_prefix("reason ") {
                Some(r) => reasons.push(r.to_string()),
                None => boot_id = l.to_string(),
            }
        }
        Look { reasons, boot_id }
    }
}

async fn look(reach: &Reach, server: &Server, deadline: Duration) -> Result<Look, String> {
    let root = server
        .package_root
        .as_ref()
        .map(|r| r.display().to_string())
        .unwrap_or_default();
    let cmd = Cmd::new(vec![
        "sh".to_string(),
        "-c".into(),
        LOOK.into(),
        "mailfleet-reboot".into(),
        root,
    ])
    .deadline(deadline);
    let out = reach
        .check(&server.name, &server.access, &cmd)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Look::parse(&out.stdout_text()))
}

/// Reboots `server` if its update asks for it and waits (up to `timeout`) until it answers
/// from a new boot or no longer needs one; what it did, or why the run must halt.
pub async fn reboot_if_needed(
    reach: &Reach,
    server: &Server,
    timeout: Duration,
) -> Result<String, String> {
    let before = look(reach, server, Duration::from_secs(30))
        .await
        .map_err(|e| format!("looking whether {} needs a reboot: {e}", server.name))?;
    if before.reasons.is_empty() {
        return Ok("no reboot needed\n".into());
    }
    let why = before.reasons.join("; ");
    if server.reboot.is_empty() {
        return Ok(format!(
            "a reboot is needed ({why}), and {} has no reboot command (reboot in its config): left to the admin\n",
            server.name
        ));
    }
    let started = tokio::time::Instant::now();
    let cmd = Cmd::new(server.reboot.clone()).deadline(Duration::from_secs(60));
    // The connection may go down with the server before the command says anything: only an
    // exit status that says the command itself failed stops here.
    match reach.run(&server.name, &server.access, &cmd).await {
        Ok(out) if out.code.is_some_and(|c| c != 0 && c != 255) => {
            return Err(format!(
                "reboot of {}: {} {}: {}",
                server.name,
                cmd.display(),
                out.status_text(),
                out.stderr_summary()
            ));
        }
        _ => {}
    }
    let deadline = started + timeout;
    loop {
        let last = match look(reach, server, Duration::from_secs(10)).await {
            Ok(now) if now.boot_id != before.boot_id || now.reasons.is_empty() => {
                return Ok(format!(
                    "rebooted ({why}): back after {:.1} s\n",
                    started.elapsed().as_secs_f64()
                ));
            }
            Ok(now) => format!("still needs a reboot: {}", now.reasons.join("; ")),
            Err(e) => e,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "reboot of {}: not back within {} s ({last})",
                server.name,
                timeout.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_and_the_boot_id_are_read() {
        let l = Look::parse(
            "reason /run/reboot-required is there\nreason kernel 6.2 is installed, 6.1 runs\n 0b1c-2d \n",
        );
        assert_eq!(l.reasons.len(), 2);
        assert_eq!(l.boot_id, "0b1c-2d");
        assert!(Look::parse("abc\n").reasons.is_empty());
    }
}

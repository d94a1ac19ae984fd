//! The update itself on one server, through its access: the package manager (`dpkg
//! --configure -a` for what a killed run left half done, the lists refreshed, then the run's
//! packages or everything upgraded, non-interactively, keeping changed config files), or the
//! server's own `update_command`.

use std::time::Duration;

use mailfleet_core::Server;
use mailfleet_remote::{Cmd, Reach};

/// How long the package manager may take on one server.
const UPDATE_DEADLINE: Duration = Duration::from_secs(1800);
/// How long apt (`DPkg::Lock::Timeout`) and `dpkg --configure -a` wait for dpkg's lock.
const DPKG_LOCK_WAIT: Duration = Duration::from_secs(300);

/// Whether dpkg refused because another dpkg or apt holds its lock.
fn dpkg_locked(error: &str) -> bool {
    error.contains("frontend lock") || error.contains("unable to lock")
}

/// The package manager on `server`: its lists refreshed, then the run's packages (or
/// everything) upgraded, non-interactively, keeping changed config files.
pub async fn update(reach: &Reach, server: &Server, packages: &[String]) -> Result<String, String> {
    if !server.update_command.is_empty() {
        let cmd = Cmd::new(server.update_command.clone()).deadline(UPDATE_DEADLINE);
        let o = reach
            .check(&server.name, &server.access, &cmd)
            .await
            .map_err(|e| format!("update of {}: {e}", server.name))?;
        return Ok(format!("$ {}\n{}", cmd.display(), o.stdout_text()));
    }
    let lock_timeout = format!("DPkg::Lock::Timeout={}", DPKG_LOCK_WAIT.as_secs());
    let mut install: Vec<&str> = vec![
        "-q",
        "-y",
        // A killed run's package manager may still hold the lock for a while.
        "-o",
        &lock_timeout,
        "-o",
        "Dpkg::Options::=--force-confdef",
        "-o",
        "Dpkg::Options::=--force-confold",
    ];
    if packages.is_empty() {
        install.push("dist-upgrade");
    } else {
        install.extend(["install", "--only-upgrade"]);
        install.extend(packages.iter().map(String::as_str));
    }
    let mut text = String::new();
    // A run killed during an update leaves packages unpacked but not configured: dpkg
    // finishes them first (nothing to do otherwise).
    let configure = crate::apt::dpkg_argv(server, &["--configure", "-a"]);
    let update = crate::apt::argv(server, "apt-get", &["-q", "-o", &lock_timeout, "update"]);
    let install = crate::apt::argv(server, "apt-get", &install);
    for (n, step) in [configure, update, install].into_iter().enumerate() {
        let mut argv = vec!["env".to_string(), "DEBIAN_FRONTEND=noninteractive".into()];
        argv.extend(step);
        let cmd = Cmd::new(argv).deadline(UPDATE_DEADLINE);
        let waited_until = std::time::Instant::now() + DPKG_LOCK_WAIT;
        let o = loop {
            match reach.check(&server.name, &server.access, &cmd).await {
                // dpkg has no lock timeout of its own (apt has DPkg::Lock::Timeout): a
                // killed run's dpkg, or unattended-upgrades, may still hold the lock.
                Err(e)
                    if n == 0
                        && dpkg_locked(&e.to_string())
                        && std::time::Instant::now() < waited_until =>
                {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                done => break done.map_err(|e| format!("update of {}: {e}", server.name))?,
            }
        };
        text.push_str(&format!("$ {}\n{}", cmd.display(), o.stdout_text()));
    }
    Ok(text)
}

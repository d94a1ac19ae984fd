//! The SSH side: one master connection per server through OpenSSH's client (the `openssh`
//! crate), strict host-key checking, and the client's complaints sorted into errors.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder};

use crate::SshTarget;
use crate::error::{RemoteError, RemoteErrorKind};

/// How long an idle master connection stays up after its last command: long enough to span
/// the monitor's rounds, short enough that a killed mailfleet leaves nothing behind for long.
const IDLE_PERSIST_SECS: usize = 600;

/// An SSH connection and the destination it was made for.
pub(crate) struct Connection {
    pub(crate) target: SshTarget,
    pub(crate) session: Arc<Session>,
    /// When a command last started over it: a master used this recently cannot have idled
    /// out, so it is not asked whether it is alive (a round trip per command otherwise).
    pub(crate) last_used: std::time::Instant,
}

/// A connection idle longer than this is checked before use (the master exits after
/// `IDLE_PERSIST_SECS`).
pub(crate) const CHECK_AFTER: Duration = Duration::from_secs(60);

impl Drop for Connection {
    fn drop(&mut self) {
        // The crate's own close only asks the master to stop listening, which leaves it (and
        // the server's end) running until it idles out; `-O exit` ends it now. Only when no
        // command still runs over it.
        if Arc::strong_count(&self.session) != 1 {
            return;
        }
        let _ = std::process::Command::new("ssh")
            .arg("-S")
            .arg(self.session.control_socket())
            .args(["-O", "exit", "mailfleet-master"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

pub(crate) async fn connect(
    server: &str,
    target: &SshTarget,
    timeout: Duration,
) -> Result<Session, RemoteError> {
    let mut b = SessionBuilder::default();
    b.known_hosts_check(KnownHosts::Strict)
        .connect_timeout(timeout.max(Duration::from_secs(1)))
        .server_alive_interval(Duration::from_secs(5))
        .control_persist(ControlPersist::IdleFor(
            std::num::NonZeroUsize::new(IDLE_PERSIST_SECS).unwrap_or(std::num::NonZeroUsize::MIN),
        ))
        // Not cleaned of old masters' directories: that races with connects in parallel.
        .control_directory(std::env::temp_dir());
    if let Some(u) = &target.user {
        b.user(u.clone());
    }
    if let Some(p) = target.port {
        b.port(p);
    }
    if let Some(k) = &target.identity_file {
        b.keyfile(k);
    }
    if let Some(k) = &target.known_hosts {
        b.user_known_hosts_file(k);
    }
    if !target.jump.is_empty() {
        b.jump_hosts(&target.jump);
    }
    match b.connect_mux(&target.host).await {
        Ok(s) => Ok(s),
        Err(e) => Err(RemoteError::new(
            server,
            connect_error(target, &error_text(&e), timeout).await,
        )),
    }
}

/// Sorts the SSH client's complaint: a host key problem (with the key's fingerprints),
/// a refused login, or a server not answering.
async fn connect_error(target: &SshTarget, message: &str, timeout: Duration) -> RemoteErrorKind {
    let destination = target.to_string();
    let known_hosts = target
        .known_hosts
        .as_ref()
        .map_or_else(|| "~/.ssh/known_hosts".into(), |p| p.display().to_string());
    let changed = message.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || message.contains("host key for") && message.contains("has changed");
    let unknown = message.contains("No ") && message.contains("host key is known")
        || message.contains("Host key verification failed");
    if changed || unknown {
        let fingerprints = crate::hostkey::fingerprints(target, timeout).await;
        return if changed {
            RemoteErrorKind::ChangedHostKey {
                destination,
                known_hosts,
                fingerprints,
            }
        } else {
            RemoteErrorKind::UnknownHostKey {
                destination,
                known_hosts,
                fingerprints,
            }
        };
    }
    let refused_login = message.contains("Permission denied (");
    RemoteErrorKind::Connect {
        destination,
        message: message
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; "),
        transient: !refused_login,
    }
}

/// An `openssh` error with its causes, as one line.
pub(crate) fn error_text(e: &openssh::Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

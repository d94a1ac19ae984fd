//! The command line's way to the daemon's runs: a Unix socket, `serve.sock` in the data
//! directory, that only the daemon's user (and root) may open (mode 0600). A client writes
//! one [`Request`] as a JSON line; the daemon answers [`Answer::Started`] (or `Refused`) at
//! once and [`Answer::Ended`] when the run ends. Who asked is the peer's Unix user, as the
//! kernel says it, not as the client claims. A client that goes away leaves the run running,
//! and the daemon writes the run's result into the client's audit record.

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mailfleet_core::Config;
use mailfleet_core::shutdown::Shutdown;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::runs::{Ended, Job, Runs};

/// The longest request line read.
const MAX_LINE: u64 = 64 * 1024;

/// The socket of the daemon serving `data_dir`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("serve.sock")
}

/// What the command line asks.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    /// The run.
    pub job: Job,
    /// The command's record in the audit log, which the daemon ends with the run's result.
    pub audit: Option<String>,
}

/// The audit log's result of a run that ended so.
pub fn result_of(ended: &Ended) -> String {
    if ended.code == 0 {
        "ok".to_string()
    } else {
        format!("exit {}: {}", ended.code, ended.summary)
    }
}

/// What the daemon answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// The run started: its number in the daemon, and the daemon's PID.
    Started {
        /// Its number.
        n: u64,
        /// The daemon's PID.
        pid: u32,
    },
    /// It was not started, and why.
    Refused(String),
    /// It ended.
    Ended(Ended),
}

fn line(a: &Answer) -> Vec<u8> {
    // An Answer is strings, numbers and JSON values: it always serializes.
    let mut v = serde_json::to_vec(a).unwrap_or_else(|_| b"{\"refused\":\"?\"}".to_vec());
    v.push(b'\n');
    v
}

/// The Unix user of `uid`, by name when it has one.
fn user(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => format!("uid {uid}"),
    }
}

/// Binds the socket at `path`: one left by a daemon that died is replaced, one another
/// daemon listens on is not.
fn bind(path: &Path) -> Result<UnixListener, String> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "{}: another mailfleet serve listens there (one daemon per data directory)",
                path.display()
            ));
        }
        std::fs::remove_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(listener)
}

/// Answers the command line on the socket of the config's data directory until `shutdown`.
/// The runs it starts go on after it (a reload binds the socket again).
pub async fn listen(config: Config, runs: Arc<Runs>, shutdown: Shutdown) -> Result<(), String> {
    let path = path(&config.data_dir);
    let listener = bind(&path)?;
    tracing::info!(
        "runs: the command line hands moves and upgrades over at {}",
        path.display()
    );
    let config = Arc::new(config);
    loop {
        tokio::select! {
            () = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let (config, runs) = (config.clone(), runs.clone());
                    tokio::spawn(async move {
                        if let Err(e) = answer(stream, &config, &runs).await {
                            tracing::warn!("runs: a client: {e}");
                        }
                    });
                }
                Err(e) => tracing::warn!("runs: accepting on {}: {e}", path.display()),
            },
        }
    }
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!("runs: {}: {e}", path.display());
    }
    Ok(())
}

async fn answer(stream: UnixStream, config: &Config, runs: &Arc<Runs>) -> std::io::Result<()> {
    let who = match stream.peer_cred() {
        Ok(c) => user(c.uid()),
        Err(e) => return Err(std::io::Error::new(e.kind(), format!("who is it: {e}"))),
    };
    let (read, mut write) = stream.into_split();
    let mut text = String::new();
    BufReader::new(read.take(MAX_LINE))
        .read_line(&mut text)
        .await?;
    let Request { job, audit } = match serde_json::from_str(&text) {
        Ok(r) => r,
        Err(e) => {
            let why = format!("not a request: {e}");
            return write.write_all(&line(&Answer::Refused(why))).await;
        }
    };
    let log = mailfleet_core::audit::AuditLog::new(&config.data_dir);
    let started = runs.start(
        config.clone(),
        job,
        &format!("{who} (command line)"),
        move |ended| {
            if let Some(id) = audit
                && let Err(e) = log.end(&id, &result_of(ended))
            {
                tracing::error!("runs: {e}");
            }
        },
    );
    let mut started = match started {
        Ok(s) => s,
        Err(why) => return write.write_all(&line(&Answer::Refused(why))).await,
    };
    let pid = std::process::id();
    write
        .write_all(&line(&Answer::Started { n: started.n, pid }))
        .await?;
    let ended = match started.done.wait_for(|e| e.is_some()).await {
        Ok(e) => e.clone(),
        Err(_) => None,
    };
    if let Some(e) = ended {
        write.write_all(&line(&Answer::Ended(e))).await?;
    }
    Ok(())
}

/// A run handed to the daemon.
pub struct Handed {
    /// Its number in the daemon.
    pub n: u64,
    /// The daemon's PID.
    pub pid: u32,
    lines: tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
}

impl Handed {
    /// Waits for its end.
    pub async fn ended(mut self) -> Result<Ended, String> {
        match self.lines.next_line().await {
            Ok(Some(l)) => match serde_json::from_str(&l) {
                Ok(Answer::Ended(e)) => Ok(e),
                Ok(other) => Err(format!("the daemon answered {other:?}")),
                Err(e) => Err(format!("the daemon's answer is not understood: {e}")),
            },
            Ok(None) => Err(format!(
                "the daemon (PID {}) stopped before the run ended: its journal says where it is, `resume` continues it",
                self.pid
            )),
            Err(e) => Err(format!("reading the daemon's answer: {e}")),
        }
    }
}

/// Hands `job` to the daemon serving `data_dir`, with the command's `audit` record:
/// `None` when none listens (the command line runs it itself), `Err` when the daemon
/// refused it.
pub async fn hand_over(
    data_dir: &Path,
    job: &Job,
    audit: Option<&str>,
) -> Result<Option<Handed>, String> {
    let path = path(data_dir);
    let stream = match UnixStream::connect(&path).await {
        Ok(s) => s,
        // No socket, or one a dead daemon left: nobody to hand it to.
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
            return Ok(None);
        }
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let (read, mut write) = stream.into_split();
    let request = Request {
        job: job.clone(),
        audit: audit.map(String::from),
    };
    let mut request = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
    request.push(b'\n');
    write
        .write_all(&request)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = BufReader::new(read).lines();
    let first = lines
        .next_line()
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?
        .ok_or_else(|| format!("{}: the daemon closed without an answer", path.display()))?;
    match serde_json::from_str(&first) {
        Ok(Answer::Started { n, pid }) => Ok(Some(Handed { n, pid, lines })),
        Ok(Answer::Refused(why)) => Err(format!("the daemon refused it: {why}")),
        Ok(Answer::Ended(_)) => Err("the daemon answered out of turn".into()),
        Err(e) => Err(format!("the daemon's answer is not understood: {e}")),
    }
}

//! Running commands on servers: locally, or over one multiplexed SSH connection per server
//! (OpenSSH's own client, through the `openssh` crate), made on first use and reused by every
//! later command and round until it breaks or idles out.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder};
use tokio::io::{
    AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _,
};
use tokio::sync::Mutex;

use crate::command::{Cmd, Output, read_bounded};
use crate::error::{RemoteError, RemoteErrorKind};
use crate::{Access, SshTarget};

/// How long an idle master connection stays up after its last command: long enough to span
/// the monitor's rounds, short enough that a killed mailfleet leaves nothing behind for long.
const IDLE_PERSIST_SECS: usize = 600;

/// An SSH connection and the destination it was made for.
struct Connection {
    target: SshTarget,
    session: Arc<Session>,
}

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

type Slot = Arc<Mutex<Option<Connection>>>;

/// The connections to the fleet's servers; clone it freely (clones share the connections).
#[derive(Clone, Default)]
pub struct Reach {
    slots: Arc<std::sync::Mutex<HashMap<String, Slot>>>,
    handshakes: Arc<AtomicU64>,
}

impl std::fmt::Debug for Reach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reach")
            .field("handshakes", &self.handshakes())
            .finish_non_exhaustive()
    }
}

/// A command whose standard output is read as it comes (a log streamed, never copied whole).
pub struct Streamed {
    /// Its standard output.
    pub stdout: Box<dyn AsyncRead + Unpin + Send>,
    stderr: tokio::task::JoinHandle<std::io::Result<(Vec<u8>, u64)>>,
    child: Child,
    server: String,
    command: String,
}

impl Streamed {
    /// Waits for it to exit once its output has been read; an exit other than 0 is an error
    /// carrying its standard error.
    pub async fn finish(self, deadline: Duration) -> Result<(), RemoteError> {
        let (server, command) = (self.server, self.command);
        let waited = tokio::time::timeout(deadline, async {
            let code = self.child.wait().await?;
            let stderr = self
                .stderr
                .await
                .map_or_else(|_| Vec::new(), |r| r.map(|x| x.0).unwrap_or_default());
            Ok::<_, WaitError>((code, stderr))
        })
        .await;
        let (code, stderr) = match waited {
            Err(_) => {
                return Err(RemoteError::new(
                    &server,
                    RemoteErrorKind::Timeout { command, deadline },
                ));
            }
            Ok(Err(e)) => return Err(e.into_error(&server, command)),
            Ok(Ok(v)) => v,
        };
        let out = Output {
            code,
            stderr,
            ..Output::default()
        };
        if out.success() {
            return Ok(());
        }
        Err(RemoteError::new(
            &server,
            RemoteErrorKind::Failed {
                command,
                status: out.status_text(),
                stderr: out.stderr_summary(),
            },
        ))
    }
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Longest line passed on whole; longer ones are cut (the rest of the line dropped).
const MAX_LINE: usize = 64 * 1024;

/// A started command, local or remote, with its pipes.
struct Spawned {
    stdin: Option<Box<dyn AsyncWrite + Unpin + Send>>,
    stdout: Option<Box<dyn AsyncRead + Unpin + Send>>,
    stderr: Option<Box<dyn AsyncRead + Unpin + Send>>,
    child: Child,
}

enum Child {
    Local(tokio::process::Child),
    Ssh(openssh::Child<Arc<Session>>),
}

/// Why waiting for a started command failed.
enum WaitError {
    NotFound,
    Lost(String),
}

impl WaitError {
    fn into_error(self, server: &str, command: String) -> RemoteError {
        RemoteError::new(
            server,
            match self {
                WaitError::NotFound => RemoteErrorKind::Spawn {
                    command,
                    message: "not found on the server".into(),
                },
                WaitError::Lost(message) => RemoteErrorKind::Lost { command, message },
            },
        )
    }
}

impl Child {
    /// Its exit code (`None`: ended by a signal).
    async fn wait(self) -> Result<Option<i32>, WaitError> {
        match self {
            Child::Local(mut c) => c
                .wait()
                .await
                .map(|s| s.code())
                .map_err(|e| WaitError::Lost(e.to_string())),
            Child::Ssh(c) => match c.wait().await {
                Ok(status) => Ok(status.code()),
                // The remote shell's 127: the program is not installed there.
                Err(openssh::Error::Remote(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(WaitError::NotFound)
                }
                // The multiplexing protocol cannot tell a signal from a lost link.
                Err(openssh::Error::RemoteProcessTerminated) => Ok(None),
                Err(e) => Err(WaitError::Lost(error_text(&e))),
            },
        }
    }
}

impl Reach {
    /// No connections yet.
    pub fn new() -> Self {
        Reach::default()
    }

    /// SSH connections made so far (each one a handshake): a second round over the same
    /// servers adds none.
    pub fn handshakes(&self) -> u64 {
        self.handshakes.load(Ordering::Relaxed)
    }

    /// Runs `cmd` on `server` and returns what it gave back, whatever its exit code; errors
    /// are for commands that could not run or finish (see [`Reach::check`] for exit codes).
    pub async fn run(
        &self,
        server: &str,
        access: &Access,
        cmd: &Cmd,
    ) -> Result<Output, RemoteError> {
        let started = Instant::now();
        let result = self
            .with_spawned(server, access, cmd, started, |sp| drive(server, sp, cmd))
            .await;
        result.map(|mut out| {
            out.elapsed = started.elapsed();
            out
        })
    }

    /// Runs `cmd` on `server`, passing each line of its output to `line` as it comes (cut at
    /// 64 KiB); its exit code (`None`: a signal).
    pub async fn run_lines(
        &self,
        server: &str,
        access: &Access,
        cmd: &Cmd,
        line: impl Fn(Stream, &[u8]) + Send + Sync,
    ) -> Result<Option<i32>, RemoteError> {
        let started = Instant::now();
        let line = &line;
        self.with_spawned(server, access, cmd, started, |mut sp| async move {
            let command = cmd.display();
            let (out, err) = (sp.stdout.take(), sp.stderr.take());
            let feed = feed(sp.stdin.take(), cmd.stdin.as_deref());
            let (_, a, b) = tokio::join!(
                feed,
                read_lines(out, |l| line(Stream::Stdout, l)),
                read_lines(err, |l| line(Stream::Stderr, l))
            );
            a.and(b).map_err(|e| {
                RemoteError::new(
                    server,
                    RemoteErrorKind::Lost {
                        command: command.clone(),
                        message: e.to_string(),
                    },
                )
            })?;
            sp.child
                .wait()
                .await
                .map_err(|e| e.into_error(server, command))
        })
        .await
    }

    /// Starts `cmd` on `server` and runs `f` on it, all within the command's deadline; a
    /// connection that broke or stopped answering is dropped so the next command makes a
    /// new one.
    async fn with_spawned<T, F, Fut>(
        &self,
        server: &str,
        access: &Access,
        cmd: &Cmd,
        started: Instant,
        f: F,
    ) -> Result<T, RemoteError>
    where
        F: FnOnce(Spawned) -> Fut,
        Fut: std::future::Future<Output = Result<T, RemoteError>>,
    {
        let command = cmd.display();
        if cmd.argv.is_empty() {
            return Err(RemoteError::new(
                server,
                RemoteErrorKind::Spawn {
                    command,
                    message: "no program given".into(),
                },
            ));
        }
        let timeout = || {
            RemoteError::new(
                server,
                RemoteErrorKind::Timeout {
                    command: command.clone(),
                    deadline: cmd.deadline,
                },
            )
        };
        match access {
            Access::Local => {
                let work = async { f(spawn_local(server, &cmd.argv, cmd.stdin.is_some())?).await };
                tokio::time::timeout(cmd.deadline, work)
                    .await
                    .map_err(|_| timeout())?
            }
            Access::Ssh(target) => {
                let session =
                    tokio::time::timeout(cmd.deadline, self.session(server, target, cmd.deadline))
                        .await
                        .map_err(|_| timeout())??;
                let left = cmd.deadline.saturating_sub(started.elapsed());
                let work = async {
                    f(spawn_ssh(server, &session, &cmd.argv, cmd.stdin.is_some()).await?).await
                };
                match tokio::time::timeout(left, work).await {
                    Ok(Err(e)) if matches!(e.kind, RemoteErrorKind::Lost { .. }) => {
                        self.forget(server, &session).await;
                        Err(e)
                    }
                    Ok(r) => r,
                    Err(_) => {
                        // A server that stopped answering: the next command connects anew
                        // instead of queueing behind a dead link.
                        self.forget(server, &session).await;
                        Err(timeout())
                    }
                }
            }
        }
    }

    /// Runs `cmd` and requires exit 0: anything else is [`RemoteErrorKind::Failed`] with the
    /// start of its error output.
    pub async fn check(
        &self,
        server: &str,
        access: &Access,
        cmd: &Cmd,
    ) -> Result<Output, RemoteError> {
        let out = self.run(server, access, cmd).await?;
        if out.success() {
            return Ok(out);
        }
        Err(RemoteError::new(
            server,
            RemoteErrorKind::Failed {
                command: cmd.display(),
                status: out.status_text(),
                stderr: out.stderr_summary(),
            },
        ))
    }

    /// Starts `argv` on `server` with its standard output to read as it comes; `connect`
    /// bounds the start (the reading has no deadline: the caller sets its own).
    pub async fn stream(
        &self,
        server: &str,
        access: &Access,
        argv: &[String],
        connect: Duration,
    ) -> Result<Streamed, RemoteError> {
        let command = Cmd::new(argv.iter().cloned()).display();
        let spawn_err = |message: String| {
            RemoteError::new(
                server,
                RemoteErrorKind::Spawn {
                    command: command.clone(),
                    message,
                },
            )
        };
        if argv.is_empty() {
            return Err(spawn_err("no program given".into()));
        }
        let mut sp = match access {
            Access::Local => spawn_local(server, argv, false)?,
            Access::Ssh(target) => {
                let session = tokio::time::timeout(connect, self.session(server, target, connect))
                    .await
                    .map_err(|_| {
                        RemoteError::new(
                            server,
                            RemoteErrorKind::Timeout {
                                command: command.clone(),
                                deadline: connect,
                            },
                        )
                    })??;
                spawn_ssh(server, &session, argv, false).await?
            }
        };
        let stdout = sp
            .stdout
            .take()
            .ok_or_else(|| spawn_err("no standard output".into()))?;
        // Drained as it comes, so a chatty error stream cannot block the command.
        let stderr = sp.stderr.take();
        let stderr = tokio::spawn(async move {
            match stderr {
                Some(r) => read_bounded(r, 64 * 1024).await,
                None => Ok((Vec::new(), 0)),
            }
        });
        Ok(Streamed {
            stdout,
            stderr,
            child: sp.child,
            server: server.into(),
            command,
        })
    }

    fn slot(&self, server: &str) -> Slot {
        // A poisoned lock means a panic elsewhere already; the map itself is still whole.
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.entry(server.to_string()).or_default().clone()
    }

    /// Drops `server`'s connection if it is still `session`.
    async fn forget(&self, server: &str, session: &Arc<Session>) {
        let slot = self.slot(server);
        let mut held = slot.lock().await;
        if held
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(&c.session, session))
        {
            *held = None;
        }
    }

    /// The server's connection, made now if there is none (one connect at a time per server;
    /// other servers are not held up).
    async fn session(
        &self,
        server: &str,
        target: &SshTarget,
        timeout: Duration,
    ) -> Result<Arc<Session>, RemoteError> {
        let slot = self.slot(server);
        let mut held = slot.lock().await;
        if let Some(c) = held.as_ref()
            && c.target == *target
        {
            // The master exits after idling; a dead one is replaced.
            if c.session.check().await.is_ok() {
                return Ok(c.session.clone());
            }
        }
        *held = None;
        let session = Arc::new(connect(server, target, timeout).await?);
        self.handshakes.fetch_add(1, Ordering::Relaxed);
        *held = Some(Connection {
            target: target.clone(),
            session: session.clone(),
        });
        Ok(session)
    }
}

async fn connect(
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
fn error_text(e: &openssh::Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

fn spawn_local(server: &str, argv: &[String], stdin: bool) -> Result<Spawned, RemoteError> {
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A command past its deadline is killed with the future that waits for it.
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            RemoteError::new(
                server,
                RemoteErrorKind::Spawn {
                    command: Cmd::new(argv.iter().cloned()).display(),
                    message: e.to_string(),
                },
            )
        })?;
    Ok(Spawned {
        stdin: child
            .stdin
            .take()
            .map(|w| Box::new(w) as Box<dyn AsyncWrite + Unpin + Send>),
        stdout: child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn AsyncRead + Unpin + Send>),
        stderr: child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn AsyncRead + Unpin + Send>),
        child: Child::Local(child),
    })
}

async fn spawn_ssh(
    server: &str,
    session: &Arc<Session>,
    argv: &[String],
    stdin: bool,
) -> Result<Spawned, RemoteError> {
    let mut child = Session::to_command(session.clone(), argv[0].as_str())
        .args(&argv[1..])
        .stdin(if stdin {
            openssh::Stdio::piped()
        } else {
            openssh::Stdio::null()
        })
        .stdout(openssh::Stdio::piped())
        .stderr(openssh::Stdio::piped())
        .spawn()
        .await
        .map_err(|e| {
            RemoteError::new(
                server,
                RemoteErrorKind::Lost {
                    command: Cmd::new(argv.iter().cloned()).display(),
                    message: error_text(&e),
                },
            )
        })?;
    Ok(Spawned {
        stdin: child
            .stdin()
            .take()
            .map(|w| Box::new(w) as Box<dyn AsyncWrite + Unpin + Send>),
        stdout: child
            .stdout()
            .take()
            .map(|r| Box::new(r) as Box<dyn AsyncRead + Unpin + Send>),
        stderr: child
            .stderr()
            .take()
            .map(|r| Box::new(r) as Box<dyn AsyncRead + Unpin + Send>),
        child: Child::Ssh(child),
    })
}

/// Writes the command's input and closes it; a program that exits without reading all of
/// its input is not an error here.
async fn feed(w: Option<Box<dyn AsyncWrite + Unpin + Send>>, bytes: Option<&[u8]>) {
    if let (Some(mut w), Some(bytes)) = (w, bytes) {
        let _ = w.write_all(bytes).await;
        let _ = w.shutdown().await;
    }
}

/// Feeds, reads both streams up to the capture bound and waits: a whole [`Output`].
async fn drive(server: &str, mut sp: Spawned, cmd: &Cmd) -> Result<Output, RemoteError> {
    let command = cmd.display();
    let (stdout, stderr) = (sp.stdout.take(), sp.stderr.take());
    let (_, out, err) = tokio::join!(
        feed(sp.stdin.take(), cmd.stdin.as_deref()),
        read_opt(stdout, cmd.capture),
        read_opt(stderr, cmd.capture)
    );
    let lost = |e: std::io::Error| {
        RemoteError::new(
            server,
            RemoteErrorKind::Lost {
                command: command.clone(),
                message: e.to_string(),
            },
        )
    };
    let (out, err) = (out.map_err(lost)?, err.map_err(lost)?);
    let code = sp
        .child
        .wait()
        .await
        .map_err(|e| e.into_error(server, command.clone()))?;
    Ok(Output {
        code,
        stdout: out.0,
        stdout_dropped: out.1,
        stderr: err.0,
        stderr_dropped: err.1,
        elapsed: Duration::ZERO,
    })
}

async fn read_opt<R: AsyncRead + Unpin>(
    r: Option<R>,
    limit: usize,
) -> std::io::Result<(Vec<u8>, u64)> {
    match r {
        Some(r) => read_bounded(r, limit).await,
        None => Ok((Vec::new(), 0)),
    }
}

/// Passes each line (without its newline, cut at [`MAX_LINE`]) to `f`.
async fn read_lines<R: AsyncRead + Unpin>(r: Option<R>, f: impl Fn(&[u8])) -> std::io::Result<()> {
    let Some(r) = r else {
        return Ok(());
    };
    let mut r = tokio::io::BufReader::new(r);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut r)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        let complete = line.last() == Some(&b'\n');
        if complete {
            line.pop();
        }
        f(&line);
        if !complete && n == MAX_LINE {
            // The rest of an overlong line is dropped.
            let mut skip = Vec::new();
            loop {
                skip.clear();
                let m = (&mut r)
                    .take(MAX_LINE as u64)
                    .read_until(b'\n', &mut skip)
                    .await?;
                if m == 0 || skip.last() == Some(&b'\n') {
                    break;
                }
            }
        }
    }
}

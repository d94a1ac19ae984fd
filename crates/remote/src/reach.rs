//! Running commands on servers: locally, or over one multiplexed SSH connection per server
//! (OpenSSH's own client, through the `openssh` crate), made on first use and reused by every
//! later command and round until it breaks or idles out.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use openssh::Session;
use tokio::io::AsyncRead;
use tokio::sync::Mutex;

use crate::command::{Cmd, Output, read_bounded};
use crate::error::{RemoteError, RemoteErrorKind};
use crate::spawn::{Child, Spawned, WaitError, drive, feed, read_lines, spawn_local, spawn_ssh};
use crate::ssh::{CHECK_AFTER, Connection, connect};
use crate::{Access, SshTarget};

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
    /// The server it runs on.
    pub fn server(&self) -> &str {
        &self.server
    }

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
                let (session, spawned) = tokio::time::timeout(
                    cmd.deadline,
                    self.spawn_on(server, target, &cmd.argv, cmd.stdin.is_some(), cmd.deadline),
                )
                .await
                .map_err(|_| timeout())??;
                let left = cmd.deadline.saturating_sub(started.elapsed());
                let work = f(spawned);
                match tokio::time::timeout(left, work).await {
                    Ok(Err(e)) if matches!(e.kind, RemoteErrorKind::Lost { .. }) => {
                        self.forget(server, &session).await;
                        Err(e)
                    }
                    Ok(r) => r,
                    // The connection stays: a command out of time is most often the command
                    // (a loaded server, a slow tool), and reconnecting every server whose
                    // command ran late costs a handshake each round. A dead link is ssh's own
                    // keepalive's to end (15 s), and the next command then reconnects.
                    Err(_) => Err(timeout()),
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
                tokio::time::timeout(connect, self.spawn_on(server, target, argv, false, connect))
                    .await
                    .map_err(|_| {
                        RemoteError::new(
                            server,
                            RemoteErrorKind::Timeout {
                                command: command.clone(),
                                deadline: connect,
                            },
                        )
                    })??
                    .1
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

    /// Starts `argv` over the server's connection. A kept connection whose master has gone
    /// (the link died, ssh's keepalive ended it) fails to start the command, which then never
    /// ran: it is started once more over a new connection.
    async fn spawn_on(
        &self,
        server: &str,
        target: &SshTarget,
        argv: &[String],
        stdin: bool,
        timeout: Duration,
    ) -> Result<(Arc<Session>, Spawned), RemoteError> {
        let (session, fresh) = self.session(server, target, timeout).await?;
        match spawn_ssh(server, &session, argv, stdin).await {
            Ok(sp) => Ok((session, sp)),
            Err(e) => {
                self.forget(server, &session).await;
                if fresh {
                    return Err(e);
                }
                tracing::debug!("{server}: its connection had gone ({e}); connecting again");
                let (session, _) = self.session(server, target, timeout).await?;
                match spawn_ssh(server, &session, argv, stdin).await {
                    Ok(sp) => Ok((session, sp)),
                    Err(e) => {
                        self.forget(server, &session).await;
                        Err(e)
                    }
                }
            }
        }
    }

    /// The server's connection and whether it was made now (one connect at a time per server;
    /// other servers are not held up).
    async fn session(
        &self,
        server: &str,
        target: &SshTarget,
        timeout: Duration,
    ) -> Result<(Arc<Session>, bool), RemoteError> {
        let slot = self.slot(server);
        let mut held = slot.lock().await;
        if let Some(c) = held.as_mut()
            && c.target == *target
        {
            // The master exits after idling; a dead one is replaced.
            if c.last_used.elapsed() < CHECK_AFTER || c.session.check().await.is_ok() {
                c.last_used = Instant::now();
                return Ok((c.session.clone(), false));
            }
        }
        *held = None;
        let session = Arc::new(connect(server, target, timeout).await?);
        self.handshakes.fetch_add(1, Ordering::Relaxed);
        *held = Some(Connection {
            target: target.clone(),
            session: session.clone(),
            last_used: Instant::now(),
        });
        Ok((session, true))
    }
}

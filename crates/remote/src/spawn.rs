//! A started command, local or over an SSH connection, with its pipes, and the ways of
//! reading it: whole (bounded) or line by line.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use openssh::Session;
use tokio::io::{
    AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _,
};

use crate::command::{Cmd, Output, read_bounded};
use crate::error::{RemoteError, RemoteErrorKind};
use crate::ssh::error_text;

/// Longest line passed on whole; longer ones are cut (the rest of the line dropped).
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// A started command, local or remote, with its pipes.
pub(crate) struct Spawned {
    pub(crate) stdin: Option<Box<dyn AsyncWrite + Unpin + Send>>,
    pub(crate) stdout: Option<Box<dyn AsyncRead + Unpin + Send>>,
    pub(crate) stderr: Option<Box<dyn AsyncRead + Unpin + Send>>,
    pub(crate) child: Child,
}

pub(crate) enum Child {
    Local(tokio::process::Child),
    Ssh(openssh::Child<Arc<Session>>),
}

/// Why waiting for a started command failed.
pub(crate) enum WaitError {
    NotFound,
    Lost(String),
}

impl WaitError {
    pub(crate) fn into_error(self, server: &str, command: String) -> RemoteError {
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
    pub(crate) async fn wait(self) -> Result<Option<i32>, WaitError> {
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

pub(crate) fn spawn_local(
    server: &str,
    argv: &[String],
    stdin: bool,
) -> Result<Spawned, RemoteError> {
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

pub(crate) async fn spawn_ssh(
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
pub(crate) async fn feed(w: Option<Box<dyn AsyncWrite + Unpin + Send>>, bytes: Option<&[u8]>) {
    if let (Some(mut w), Some(bytes)) = (w, bytes) {
        let _ = w.write_all(bytes).await;
        let _ = w.shutdown().await;
    }
}

/// Feeds, reads both streams up to the capture bound and waits: a whole [`Output`].
pub(crate) async fn drive(server: &str, mut sp: Spawned, cmd: &Cmd) -> Result<Output, RemoteError> {
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

pub(crate) async fn read_opt<R: AsyncRead + Unpin>(
    r: Option<R>,
    limit: usize,
) -> std::io::Result<(Vec<u8>, u64)> {
    match r {
        Some(r) => read_bounded(r, limit).await,
        None => Ok((Vec::new(), 0)),
    }
}

/// Passes each line (without its newline, cut at [`MAX_LINE`]) to `f`.
pub(crate) async fn read_lines<R: AsyncRead + Unpin>(
    r: Option<R>,
    f: impl Fn(&[u8]),
) -> std::io::Result<()> {
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

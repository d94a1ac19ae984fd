//! A streamed command's output as a blocking [`std::io::Read`], for readers on plain threads
//! (the report's reader): each read waits at most `idle` for data, and the end of the output
//! waits for the command's exit, so a `cat` that failed is an error, never a short file.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::runtime::Handle;

use crate::reach::Streamed;

/// A command's standard output, read by blocking on the runtime that runs the command.
pub struct BlockingRead {
    handle: Handle,
    stdout: Box<dyn AsyncRead + Unpin + Send>,
    /// The command, until its exit has been waited for.
    rest: Option<Streamed>,
    idle: Duration,
    server: String,
}

impl Streamed {
    /// This output as a blocking reader, for a thread outside the runtime `handle` runs
    /// (calling it from inside an async task would block the runtime).
    pub fn into_blocking(mut self, handle: Handle, idle: Duration) -> BlockingRead {
        let stdout = std::mem::replace(&mut self.stdout, Box::new(tokio::io::empty()));
        BlockingRead {
            handle,
            stdout,
            server: self.server().to_string(),
            rest: Some(self),
            idle,
        }
    }
}

impl io::Read for BlockingRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.rest.is_none() {
            return Ok(0);
        }
        let (idle, stdout) = (self.idle, &mut self.stdout);
        let read = self
            .handle
            .block_on(async { tokio::time::timeout(idle, stdout.read(buf)).await });
        match read {
            Err(_) => {
                self.rest = None;
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{}: no data for {} s", self.server, idle.as_secs_f64()),
                ))
            }
            Ok(Ok(0)) => match self.rest.take() {
                Some(command) => {
                    self.handle
                        .block_on(command.finish(idle))
                        .map_err(io::Error::other)?;
                    Ok(0)
                }
                None => Ok(0),
            },
            Ok(r) => r,
        }
    }
}

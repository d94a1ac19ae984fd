//! Target I/O in a child process, so that a target that stops answering (an NFS server that
//! still answers ping, a dead FUSE mount) cannot hang the backup: every operation has a
//! deadline; when it passes, the child is killed (or abandoned, if a syscall holds it in the
//! kernel) and the run ends with [`BackupError::Hung`]. The parent never touches the target.
//!
//! Protocol on the child's stdin/stdout, one request at a time: a request is an op byte, a
//! u32 key length, the key, a u64 data length and the data; a reply is a status byte (0 ok,
//! 1 not found, 2 error) and a u64 length with the payload. A range read carries the offset and
//! length as two u64 in its data.

use std::io::{BufReader, BufWriter, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use crate::error::BackupError;
use crate::target::Target;

const PUT: u8 = 1;
const GET: u8 = 2;
const EXISTS: u8 = 3;
const LIST: u8 = 4;
const DELETE: u8 = 5;
const GET_RANGE: u8 = 6;

const OK: u8 = 0;
const NOT_FOUND: u8 = 1;
const FAILED: u8 = 2;

/// Longest key or reply accepted: a corrupt stream must not make us allocate without bound.
const MAX_FRAME: u64 = 1 << 32;

fn write_frame(w: &mut impl Write, op: u8, key: &str, data: &[u8]) -> std::io::Result<()> {
    w.write_all(&[op])?;
    w.write_all(&(key.len() as u32).to_le_bytes())?;
    w.write_all(key.as_bytes())?;
    w.write_all(&(data.len() as u64).to_le_bytes())?;
    w.write_all(data)?;
    w.flush()
}

fn read_exact_vec(r: &mut impl Read, len: u64) -> std::io::Result<Vec<u8>> {
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes"),
        ));
    }
    let mut v = vec![0; len as usize];
    r.read_exact(&mut v)?;
    Ok(v)
}

/// Serves target operations on stdin/stdout until stdin closes (the worker's main loop).
pub fn serve(target: &dyn Target) -> std::io::Result<()> {
    let mut input = BufReader::new(std::io::stdin().lock());
    let mut output = BufWriter::new(std::io::stdout().lock());
    loop {
        let mut op = [0u8; 1];
        match input.read_exact(&mut op) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let mut n4 = [0u8; 4];
        input.read_exact(&mut n4)?;
        let key = String::from_utf8_lossy(&read_exact_vec(
            &mut input,
            u64::from(u32::from_le_bytes(n4)),
        )?)
        .into_owned();
        let mut n8 = [0u8; 8];
        input.read_exact(&mut n8)?;
        let data = read_exact_vec(&mut input, u64::from_le_bytes(n8))?;
        let result: Result<Vec<u8>, BackupError> = match op[0] {
            PUT => target.put(&key, &data).map(|()| Vec::new()),
            GET => target.get(&key),
            GET_RANGE => match (data.get(..8), data.get(8..16)) {
                (Some(o), Some(l)) => {
                    let mut o8 = [0u8; 8];
                    let mut l8 = [0u8; 8];
                    o8.copy_from_slice(o);
                    l8.copy_from_slice(l);
                    target.get_range(&key, u64::from_le_bytes(o8), u64::from_le_bytes(l8))
                }
                _ => Err(BackupError::Format("short range request".into())),
            },
            EXISTS => target.exists(&key).map(|e| vec![u8::from(e)]),
            LIST => target.list(&key).map(|keys| keys.join("\n").into_bytes()),
            DELETE => target.delete(&key).map(|()| Vec::new()),
            other => Err(BackupError::Format(format!("unknown worker op {other}"))),
        };
        let (status, payload) = match result {
            Ok(p) => (OK, p),
            Err(BackupError::NotFound(m)) => (NOT_FOUND, m.into_bytes()),
            Err(e) => (FAILED, e.to_string().into_bytes()),
        };
        output.write_all(&[status])?;
        output.write_all(&(payload.len() as u64).to_le_bytes())?;
        output.write_all(&payload)?;
        output.flush()?;
    }
}

struct Request {
    op: u8,
    key: String,
    data: Vec<u8>,
}

type Reply = std::io::Result<(u8, Vec<u8>)>;

/// The parent's side: a [`Target`] whose every operation runs in the worker under a deadline.
pub struct Guarded {
    /// Held for a whole request and its reply, so concurrent callers never swap replies.
    calls: Mutex<()>,
    requests: Mutex<Option<Sender<Request>>>,
    replies: Mutex<Receiver<Reply>>,
    child: Mutex<Child>,
    timeout: Duration,
    describe: String,
    hung: Mutex<Option<String>>,
}

fn pump(
    mut stdin: ChildStdin,
    stdout: ChildStdout,
    requests: Receiver<Request>,
    replies: Sender<Reply>,
) {
    let mut stdin_w = BufWriter::new(&mut stdin);
    let mut out = BufReader::new(stdout);
    for r in requests {
        let reply = write_frame(&mut stdin_w, r.op, &r.key, &r.data).and_then(|()| {
            let mut head = [0u8; 9];
            out.read_exact(&mut head)?;
            let mut n8 = [0u8; 8];
            n8.copy_from_slice(&head[1..]);
            Ok((head[0], read_exact_vec(&mut out, u64::from_le_bytes(n8))?))
        });
        if replies.send(reply).is_err() {
            return;
        }
    }
}

impl Guarded {
    /// Starts the worker (`command` must run [`serve`] on the same target) with a deadline
    /// for each operation.
    pub fn spawn(
        mut command: Command,
        timeout: Duration,
        describe: String,
    ) -> Result<Self, BackupError> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| BackupError::Target {
                what: "start the target worker".into(),
                message: e.to_string(),
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(BackupError::Target {
                what: "start the target worker".into(),
                message: "no pipes".into(),
            });
        };
        let (req_tx, req_rx) = channel();
        let (rep_tx, rep_rx) = channel();
        // The pump may block forever on a stuck worker; it is never joined.
        std::thread::Builder::new()
            .name("backup-target".into())
            .spawn(move || pump(stdin, stdout, req_rx, rep_tx))
            .map_err(|e| BackupError::Target {
                what: "start the target worker".into(),
                message: e.to_string(),
            })?;
        Ok(Guarded {
            calls: Mutex::new(()),
            requests: Mutex::new(Some(req_tx)),
            replies: Mutex::new(rep_rx),
            child: Mutex::new(child),
            timeout,
            describe,
            hung: Mutex::new(None),
        })
    }

    fn call(&self, op: u8, key: &str, data: &[u8]) -> Result<Vec<u8>, BackupError> {
        let what = match op {
            PUT => format!("write {key}"),
            GET | GET_RANGE => format!("read {key}"),
            EXISTS => format!("stat {key}"),
            LIST => format!("list {key}"),
            _ => format!("delete {key}"),
        };
        let _one_at_a_time = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        if let Ok(h) = self.hung.lock()
            && let Some(first) = h.as_ref()
        {
            return Err(BackupError::Hung {
                what: first.clone(),
                secs: self.timeout.as_secs(),
            });
        }
        let sent = self
            .requests
            .lock()
            .ok()
            .and_then(|r| r.as_ref().cloned())
            .map(|tx| {
                tx.send(Request {
                    op,
                    key: key.to_string(),
                    data: data.to_vec(),
                })
            });
        if !matches!(sent, Some(Ok(()))) {
            return Err(BackupError::Target {
                what,
                message: "the target worker is gone".into(),
            });
        }
        let reply = self
            .replies
            .lock()
            .map_err(|_| BackupError::Target {
                what: what.clone(),
                message: "worker channel poisoned".into(),
            })?
            .recv_timeout(self.timeout);
        match reply {
            Ok(Ok((OK, payload))) => Ok(payload),
            Ok(Ok((NOT_FOUND, m))) => {
                Err(BackupError::NotFound(String::from_utf8_lossy(&m).into()))
            }
            Ok(Ok((_, m))) => Err(BackupError::Target {
                what,
                message: String::from_utf8_lossy(&m).into(),
            }),
            Ok(Err(e)) => Err(BackupError::Target {
                what,
                message: format!("the target worker failed: {e}"),
            }),
            Err(_) => {
                self.abandon(&what);
                Err(BackupError::Hung {
                    what,
                    secs: self.timeout.as_secs(),
                })
            }
        }
    }

    /// Kills the worker and refuses every later operation.
    fn abandon(&self, what: &str) {
        if let Ok(mut h) = self.hung.lock() {
            h.get_or_insert_with(|| what.to_string());
        }
        if let Ok(mut c) = self.child.lock() {
            // SIGKILL: a worker stuck in an uninterruptible call dies when the call returns;
            // nothing here waits for that.
            let _ = c.kill();
        }
    }

    /// Closes the worker's input and reaps it, within the deadline; a worker that hung was
    /// killed already and is not waited for (a call stuck in the kernel can hold it there as
    /// long as the target is dead).
    pub fn close(&self) {
        if let Ok(mut r) = self.requests.lock() {
            r.take();
        }
        if self.hung.lock().map(|h| h.is_some()).unwrap_or(true) {
            return;
        }
        if let Ok(mut c) = self.child.lock()
            && !matches!(
                mailfleet_core::child::wait_until(&mut c, std::time::Instant::now() + self.timeout),
                Ok(Some(_))
            )
        {
            let _ = c.kill();
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.close();
    }
}

impl Target for Guarded {
    fn put(&self, key: &str, data: &[u8]) -> Result<(), BackupError> {
        self.call(PUT, key, data).map(|_| ())
    }
    fn get(&self, key: &str) -> Result<Vec<u8>, BackupError> {
        self.call(GET, key, &[])
    }
    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>, BackupError> {
        let range = [offset.to_le_bytes(), len.to_le_bytes()].concat();
        self.call(GET_RANGE, key, &range)
    }
    fn exists(&self, key: &str) -> Result<bool, BackupError> {
        Ok(self.call(EXISTS, key, &[])?.first() == Some(&1))
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, BackupError> {
        let raw = self.call(LIST, prefix, &[])?;
        Ok(String::from_utf8_lossy(&raw)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }
    fn delete(&self, key: &str) -> Result<(), BackupError> {
        self.call(DELETE, key, &[]).map(|_| ())
    }
    fn describe(&self) -> String {
        self.describe.clone()
    }
}

/// Checks the target answers: writes, reads back and removes a small file under the deadline.
pub fn check_alive(target: &dyn Target) -> Result<(), BackupError> {
    let key = format!("tmp/alive-{}", std::process::id());
    let token = format!("mailfleet {:?}", std::time::SystemTime::now()).into_bytes();
    target.put(&key, &token)?;
    let back = target.get(&key)?;
    target.delete(&key)?;
    if back == token {
        Ok(())
    } else {
        Err(BackupError::Target {
            what: "check".into(),
            message: "a file written to the target reads back different".into(),
        })
    }
}

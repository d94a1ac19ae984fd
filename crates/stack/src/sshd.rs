//! One OpenSSH `sshd` per demo server, on the server's own loopback address: how mailfleet
//! reaches the servers' tools, as it would a real fleet. Host keys and one operator key are
//! generated once per base; `known_hosts` lists every server's key, so strict checking holds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{self, run};
use crate::{StackError, io_err};

/// The operator's key and the shared `known_hosts` of a base directory.
#[derive(Debug, Clone)]
pub struct SshFiles {
    /// The directory holding them.
    pub dir: PathBuf,
}

impl SshFiles {
    /// Under `base/ssh`.
    pub fn new(base: &Path) -> Self {
        SshFiles {
            dir: base.join("ssh"),
        }
    }
    /// The operator's private key (the public one beside it, `.pub`).
    pub fn operator_key(&self) -> PathBuf {
        self.dir.join("operator")
    }
    /// The `known_hosts` with every server's key.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }
    /// The keys allowed to log in.
    pub fn authorized_keys(&self) -> PathBuf {
        self.dir.join("authorized_keys")
    }

    /// Creates the operator key if there is none, and allows it to log in.
    pub fn ensure(&self) -> Result<(), StackError> {
        std::fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        let key = self.operator_key();
        if !key.exists() {
            keygen(&key, "mailfleet-operator")?;
        }
        let public = key.with_extension("pub");
        let text = std::fs::read_to_string(&public).map_err(io_err(&public))?;
        let auth = self.authorized_keys();
        std::fs::write(&auth, text).map_err(io_err(&auth))
    }

    /// Writes `known_hosts` with one line per (address, port, host key file).
    pub fn write_known_hosts(&self, hosts: &[(String, u16, PathBuf)]) -> Result<(), StackError> {
        let mut text = String::new();
        for (host, port, key) in hosts {
            let public = key.with_extension("pub");
            let line = std::fs::read_to_string(&public).map_err(io_err(&public))?;
            // `type base64 comment`: the comment is dropped, the name put in front.
            let mut f = line.split_whitespace();
            let (Some(kind), Some(b64)) = (f.next(), f.next()) else {
                return Err(StackError::State(format!(
                    "{}: not an OpenSSH public key",
                    public.display()
                )));
            };
            text.push_str(&format!("[{host}]:{port} {kind} {b64}\n"));
        }
        let path = self.known_hosts();
        std::fs::write(&path, text).map_err(io_err(&path))
    }
}

fn keygen(path: &Path, comment: &str) -> Result<(), StackError> {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path))
}

/// One server's `sshd`: its directory holds its host key, config, PID file and log.
#[derive(Debug, Clone)]
pub struct Sshd {
    /// Its directory.
    pub dir: PathBuf,
    /// The address it listens on.
    pub host: String,
    /// Its port.
    pub port: u16,
}

impl Sshd {
    /// The sshd of the server whose directory is `dir`.
    pub fn new(dir: &Path, host: &str, port: u16) -> Self {
        Sshd {
            dir: dir.join("sshd"),
            host: host.to_string(),
            port,
        }
    }
    /// Its host key (the public one beside it).
    pub fn host_key(&self) -> PathBuf {
        self.dir.join("ssh_host_ed25519_key")
    }
    /// Its PID file.
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("sshd.pid")
    }
    /// Its log.
    pub fn log(&self) -> PathBuf {
        self.dir.join("sshd.log")
    }

    /// Writes its config and, once, its host key.
    pub fn configure(&self, files: &SshFiles) -> Result<(), StackError> {
        std::fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        if !self.host_key().exists() {
            keygen(&self.host_key(), &format!("{}:{}", self.host, self.port))?;
        }
        let conf = format!(
            "# Written by mailfleet's stack: the demo server's own sshd.
ListenAddress {host}:{port}
HostKey {key}
PidFile {pid}
AuthorizedKeysFile {auth}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# The key files live under a temporary directory, which strict modes refuse.
StrictModes no
PrintMotd no
PrintLastLog no
# mailfleet multiplexes many commands over one connection per server.
MaxSessions 100
MaxStartups 100:30:200
# sshd runs each command through the user's login shell; bash started by sshd at shell
# level 1 reads ~/.bashrc first, and a developer's (pyenv, nvm) costs ~200 ms a command. A
# fleet's mailfleet account has a plain shell; here the level says it is no top shell.
SetEnv SHLVL=1
LogLevel INFO
",
            host = self.host,
            port = self.port,
            key = self.host_key().display(),
            pid = self.pid_file().display(),
            auth = files.authorized_keys().display(),
        );
        let path = self.dir.join("sshd_config");
        std::fs::write(&path, conf).map_err(io_err(&path))
    }

    /// Starts it (it daemonises and writes its PID file) and waits for its port.
    pub fn start(&self) -> Result<(), StackError> {
        self.start_under(&[])
    }

    /// Starts it as the last arguments of `wrapper` (`unshare ...` to give it a namespace of
    /// its own, say), which must end by running them; then waits for its port.
    pub fn start_under(&self, wrapper: &[std::ffi::OsString]) -> Result<(), StackError> {
        // sshd's privilege separation needs this directory; Debian creates it at boot only.
        let privsep = Path::new("/run/sshd");
        std::fs::create_dir_all(privsep).map_err(io_err(privsep))?;
        let program = crate::install::which("sshd").ok_or_else(|| StackError::Missing {
            programs: "sshd".into(),
            packages: "openssh-server".into(),
        })?;
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(program);
                c
            }
            None => Command::new(program),
        };
        run(cmd
            .arg("-f")
            .arg(self.dir.join("sshd_config"))
            .arg("-E")
            .arg(self.log()))?;
        process::wait_listening(
            "sshd",
            &self.host,
            self.port,
            &self.log(),
            Duration::from_secs(20),
        )?;
        // sshd writes its PID file just after it binds.
        if !process::wait_until(Duration::from_secs(5), || {
            process::read_pid(&self.pid_file()).is_some()
        }) {
            return Err(StackError::State(format!(
                "sshd on {}:{} wrote no PID file {}",
                self.host,
                self.port,
                self.pid_file().display()
            )));
        }
        Ok(())
    }

    /// Stops it by its PID (its connections' processes end with their connections).
    pub fn stop(&self) -> Result<Option<i32>, StackError> {
        process::stop(&self.pid_file(), "sshd", Duration::from_secs(10))
    }
}

//! Publishes where each mailbox lives to the servers that route by it: Postfix maps on every
//! MTA (`mailfleet-transport`, `-mailboxes`, `-domains`, hash tables, then `postfix reload`)
//! a Dovecot passwd-file per mailbox store, and for each IMAP/POP3 proxy one per protocol
//! sending each login on to the account's store (`proxy=y host= port=`), each through the
//! server's own access (SSH or local). Files are rewritten only when their content changes, atomically; one server that
//! cannot be reached does not keep the others from being published to.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mailfleet_remote::{Access, Cmd, Reach, RemoteError};

use crate::Account;
use crate::fleet::{Fleet, Role, Server};

/// The transport of a locked account's mail: an LMTP client the MTAs list in
/// `defer_transports`, so its mail is accepted and queued (a `retry:` or `error:` transport
/// would be refused at RCPT, leaving the mail in the sender's queue for hours) and delivered
/// when the unlock flushes the queues, by then to wherever the account lives.
pub const LOCKED_TRANSPORT: &str = "mailfleet-locked";

/// The passwd-file extra fields of a locked account: the password may match, the login is
/// still refused, with this reason (Dovecot splits extra fields at spaces: none in it).
const LOCKED_LOGIN: &str = "nologin=y reason=Mailbox-being-moved:try-again-in-a-minute";

/// Each step on a server (a file compared or written, `postmap`, a reload) must finish by then.
const STEP_DEADLINE: Duration = Duration::from_secs(30);

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `postmap` or `postfix reload` failed.
    #[error("{command}: {message}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status and error output.
        message: String,
    },
    /// Some servers could not be published to (the others were).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Servers(Vec<RemoteError>),
    /// Some MTAs' queues could not be read or scheduled (the others were).
    #[error("flushing the queues: {}", .0.join("; "))]
    Flush(Vec<String>),
}

/// What publishing changed.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Published {
    /// Files rewritten.
    pub changed: Vec<PathBuf>,
    /// MTAs whose Postfix was told to reload.
    pub reloaded: Vec<String>,
    /// Accounts on servers the config does not know or that have no LMTP port.
    pub unroutable: Vec<String>,
}

/// Writes every map and user file the fleet's servers are configured for, on each server
/// through its access; every server is tried even when one fails.
pub async fn publish(
    reach: &Reach,
    fleet: &Fleet,
    accounts: &[Account],
) -> Result<Published, RoutingError> {
    let mut out = Published::default();
    let mut transport = String::new();
    let mut mailboxes = String::new();
    let mut domains = BTreeSet::new();
    for a in accounts {
        let Some(lmtp) = fleet.server(&a.server).and_then(lmtp_target) else {
            out.unroutable.push(a.address.to_string());
            continue;
        };
        if a.locked {
            // Moving: the MTAs keep its mail queued, never bounced nor refused, until the
            // unlock flushes it to wherever the account lives then.
            let nexthop = lmtp.strip_prefix("lmtp:").unwrap_or(&lmtp);
            let _ = writeln!(transport, "{} {LOCKED_TRANSPORT}:{nexthop}", a.address);
        } else {
            let _ = writeln!(transport, "{} {lmtp}", a.address);
        }
        let _ = writeln!(mailboxes, "{} OK", a.address);
        domains.insert(a.address.domain().to_string());
    }
    let domains: String = domains.iter().map(|d| format!("{d} OK\n")).collect();
    let maps = [
        ("mailfleet-transport", transport.as_str()),
        ("mailfleet-mailboxes", mailboxes.as_str()),
        ("mailfleet-domains", domains.as_str()),
    ];
    let work = fleet.servers.iter().map(|server| {
        let files = match &server.passwd_file {
            None => Vec::new(),
            // A proxy sends each login on to the account's store: a file per protocol, since
            // each store listens on its own port for each.
            Some(path) if server.has_role(Role::Proxy) => PROXIED
                .iter()
                .map(|(proto, port)| {
                    (
                        PathBuf::from(format!("{}.{proto}", path.display())),
                        proxy_file(fleet, accounts, *port),
                    )
                })
                .collect(),
            // A store authenticates its own accounts; an MTA (SMTP AUTH) every account.
            Some(path) if server.has_role(Role::Mailbox) => vec![(
                path.clone(),
                passwd_file(accounts.iter().filter(|a| a.server == server.name)),
            )],
            Some(path) => vec![(path.clone(), passwd_file(accounts.iter()))],
        };
        publish_to(reach, server, &maps, files)
    });
    let mut failed = Vec::new();
    for r in futures::future::join_all(work).await {
        match r {
            Ok((changed, reloaded)) => {
                out.changed.extend(changed);
                out.reloaded.extend(reloaded);
            }
            Err(e) => failed.push(e),
        }
    }
    if failed.is_empty() {
        Ok(out)
    } else {
        Err(RoutingError::Servers(failed))
    }
}

/// One server's share: its maps (an MTA's) and its passwd-file.
async fn publish_to(
    reach: &Reach,
    server: &Server,
    maps: &[(&str, &str)],
    files: Vec<(PathBuf, String)>,
) -> Result<(Vec<PathBuf>, Option<String>), RemoteError> {
    let (name, access) = (server.name.as_str(), &server.access);
    let mut changed = Vec::new();
    let mut reloaded = None;
    if let (true, Some(dir)) = (server.has_role(Role::Mta), &server.postfix_dir) {
        let dir_s = dir.display().to_string();
        for (file, content) in maps {
            let path = dir.join(file);
            if write_if_changed(reach, name, access, &path, content).await? {
                let map = format!("hash:{}", path.display());
                reach
                    .check(name, access, &step(["postmap", "-c", &dir_s, &map]))
                    .await?;
                changed.push(path);
            }
        }
        let running = || step(["postfix", "-c", &dir_s, "status"]);
        if !changed.is_empty() && reach.run(name, access, &running()).await?.success() {
            reach
                .check(name, access, &step(["postfix", "-c", &dir_s, "reload"]))
                .await?;
            reloaded = Some(server.name.clone());
        }
    }
    for (path, content) in files {
        if write_if_changed(reach, name, access, &path, &content).await? {
            changed.push(path);
        }
    }
    Ok((changed, reloaded))
}

/// How often [`flush`] looks at an MTA's queue at most (every 500 ms).
const FLUSH_LOOKS: usize = 20;

/// Asks every MTA's Postfix to deliver now the queued mail of the `unlocked` accounts, through
/// each one's access: after an unlock, the mail that waited goes at once. Only their messages
/// are scheduled (`postqueue -i`, one queue ID at a time), and none with a recipient in
/// `still_locked`: a whole-queue flush (`postqueue -f`) would also push the mail of accounts
/// still locked through the locked transport into their old store, in the middle of their
/// move. Every MTA is tried; the names of those flushed.
pub async fn flush(
    reach: &Reach,
    fleet: &Fleet,
    unlocked: &[String],
    still_locked: &BTreeSet<String>,
) -> Result<Vec<String>, RoutingError> {
    let wanted: BTreeSet<String> = unlocked.iter().map(|a| a.to_ascii_lowercase()).collect();
    let locked: BTreeSet<String> = still_locked
        .iter()
        .map(|a| a.to_ascii_lowercase())
        .collect();
    let mtas: Vec<&Server> = fleet
        .with_role(Role::Mta)
        .filter(|s| s.postfix_dir.is_some())
        .collect();
    let runs = mtas.iter().map(|s| {
        let (wanted, locked) = (&wanted, &locked);
        async move {
            let pf =
                crate::postfix::Postfix::new(reach, &s.name, &s.access, s.postfix_dir.as_deref());
            // A message in delivery when the lock ended may still come back deferred by
            // it (CI: one waited for Postfix's next retry, minutes later): looked at again
            // until none of these accounts' messages is in delivery, for a few seconds.
            let mut flushed = BTreeSet::new();
            for _ in 0..FLUSH_LOOKS {
                let queue = pf.queue(STEP_DEADLINE).await.map_err(|e| e.to_string())?;
                let mut in_delivery = false;
                for m in &queue {
                    let to: Vec<String> = m
                        .recipients
                        .iter()
                        .map(|r| r.address.to_ascii_lowercase())
                        .collect();
                    if !to.iter().any(|a| wanted.contains(a))
                        || to.iter().any(|a| locked.contains(a))
                    {
                        continue;
                    }
                    if m.queue_name != "deferred" {
                        in_delivery = true;
                    } else if flushed.insert(m.queue_id.clone()) {
                        pf.run("postqueue", &["-i", &m.queue_id], STEP_DEADLINE)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                }
                if !in_delivery {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Ok::<_, String>(s.name.clone())
        }
    });
    let mut flushed = Vec::new();
    let mut failed = Vec::new();
    for r in futures::future::join_all(runs).await {
        match r {
            Ok(name) => flushed.push(name),
            Err(e) => failed.push(e),
        }
    }
    if failed.is_empty() {
        Ok(flushed)
    } else {
        Err(RoutingError::Flush(failed))
    }
}

fn step<const N: usize>(argv: [&str; N]) -> Cmd {
    Cmd::new(argv).deadline(STEP_DEADLINE)
}

/// The Postfix transport (`lmtp:inet:host:port`) delivering into a store.
fn lmtp_target(s: &Server) -> Option<String> {
    let port = s.ports.lmtp?;
    let host = if s.host.contains(':') {
        format!("[{}]", s.host)
    } else {
        s.host.clone()
    };
    Some(format!("lmtp:inet:{host}:{port}"))
}

/// A store's port for one protocol.
type PortOf = fn(&Server) -> Option<u16>;

/// The protocols a proxy passes on, each with the store port it goes to.
const PROXIED: [(&str, PortOf); 2] = [("imap", |s| s.ports.imap), ("pop3", |s| s.ports.pop3)];

/// A proxy's passwd-file for one protocol: each account's hash and where its store listens
/// for that protocol (`proxy=y host= port=`); a locked account is refused there, with the
/// reason, like on its store; an account whose store lacks the protocol is left out.
fn proxy_file(fleet: &Fleet, accounts: &[Account], port: PortOf) -> String {
    accounts
        .iter()
        .filter_map(|a| {
            let store = fleet.server(&a.server)?;
            let hash = a.password_hash.as_deref().unwrap_or("{CRYPT}!");
            if a.locked {
                return Some(format!("{}:{hash}::::::{LOCKED_LOGIN}\n", a.address));
            }
            Some(format!(
                "{}:{hash}::::::proxy=y host={} port={}\n",
                a.address,
                store.host,
                port(store)?
            ))
        })
        .collect()
}

/// Dovecot passwd-file lines for these accounts; uid, gid and home come from the store's
/// `default_fields`. An account without a hash gets one no password can match.
fn passwd_file<'a>(accounts: impl Iterator<Item = &'a Account>) -> String {
    accounts
        .map(|a| {
            let hash = a.password_hash.as_deref().unwrap_or("{CRYPT}!");
            if a.locked {
                format!("{}:{hash}::::::{LOCKED_LOGIN}\n", a.address)
            } else {
                format!("{}:{hash}::::::\n", a.address)
            }
        })
        .collect()
}

/// Replaces a file on the server by rename if its content differs (`cmp` tells); keeps an
/// existing file's mode and owner, since Dovecot's auth process must go on reading it. The
/// script is fixed and the path its argument: nothing of ours is parsed by a shell.
pub async fn write_if_changed(
    reach: &Reach,
    server: &str,
    access: &Access,
    path: &Path,
    content: &str,
) -> Result<bool, RemoteError> {
    let p = path.display().to_string();
    let same = reach
        .run(
            server,
            access,
            &step(["cmp", "-s", "-", &p]).stdin(content.as_bytes()),
        )
        .await?;
    if same.success() {
        return Ok(false);
    }
    // A temporary file of its own (writers may run at once), mode 0600 from mktemp; the
    // length is checked before the rename: a writer killed halfway (its input cut short)
    // must not leave a truncated map in place.
    const WRITE: &str = r#"t=$(mktemp "$1.mailfleet-XXXXXX") || exit 1
cat > "$t" || { rm -f "$t"; exit 1; }
[ "$(wc -c < "$t")" -eq "$2" ] || { rm -f "$t"; echo "short input: not written" >&2; exit 1; }
if [ -e "$1" ]; then
  chmod --reference="$1" "$t" || { rm -f "$t"; exit 1; }
  # Only root can give a file away; others keep their own ownership.
  chown --reference="$1" "$t" 2>/dev/null
fi
mv -f "$t" "$1""#;
    reach
        .check(
            server,
            access,
            &step([
                "sh",
                "-c",
                WRITE,
                "mailfleet-write",
                &p,
                &content.len().to_string(),
            ])
            .stdin(content.as_bytes()),
        )
        .await?;
    Ok(true)
}

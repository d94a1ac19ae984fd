//! IMAP over `async-imap`: STARTTLS or implicit TLS as the endpoint asks, LOGIN (also as a
//! Dovecot master user), and the commands moves, restores and probes need, each under the
//! clock's deadline. After a command timed out the session is unusable (an answer may still
//! be on its way) and every later command says so.

use async_imap::imap_proto::{Capability, Response, ResponseCode};
use futures::TryStreamExt;

pub use async_imap::types::{Fetch, Flag, Mailbox, Name};

use crate::clock::Clock;
use crate::error::{ErrorKind, MailError};
use crate::line::{open, upgrade_with};
use crate::tls::{Endpoint, Stream, TlsInfo};

/// The separator between the user and the master user in a Dovecot master login
/// (`auth_master_user_separator`).
pub const MASTER_SEPARATOR: char = '*';

type Session = async_imap::Session<Stream>;

/// A logged-in IMAP session.
pub struct Imap {
    session: Session,
    clock: Clock,
    tls: Option<TlsInfo>,
    broken: Option<String>,
}

/// An async-imap error as ours; `NO` and `BAD` keep the server's text and response code.
fn kind(e: async_imap::error::Error) -> ErrorKind {
    use async_imap::error::Error;
    match e {
        Error::Io(e) => e.into(),
        Error::No(s) => ErrorKind::No(server_text(&s)),
        Error::Bad(s) => ErrorKind::Bad(server_text(&s)),
        Error::ConnectionLost => ErrorKind::Closed,
        Error::Append => ErrorKind::No("the server refused the APPEND".into()),
        other => ErrorKind::Protocol(other.to_string()),
    }
}

/// The server's words from async-imap's `code: Some(TryCreate), info: Some("...")` form, as
/// `[TRYCREATE] ...`; other text as it is.
fn server_text(s: &str) -> String {
    let Some(rest) = s.strip_prefix("code: ") else {
        return s.to_string();
    };
    let Some((code, info)) = rest.split_once(", info: ") else {
        return s.to_string();
    };
    let code = code
        .strip_prefix("Some(")
        .and_then(|c| c.strip_suffix(')'))
        .map(|c| c.split(['(', ' ']).next().unwrap_or(c).to_ascii_uppercase());
    let info = info
        .strip_prefix("Some(\"")
        .and_then(|i| i.strip_suffix("\")"))
        .map(|i| i.replace("\\\"", "\"").replace("\\\\", "\\"))
        .unwrap_or_default();
    match code {
        Some(c) => format!("[{c}] {info}"),
        None => info,
    }
}

/// Reads the greeting; whether it announces STARTTLS.
async fn greeting(client: &mut async_imap::Client<Stream>) -> Result<bool, ErrorKind> {
    match client.read_response().await {
        Ok(Some(r)) => Ok(match r.parsed() {
            Response::Data { outcome, .. } => match &outcome.code {
                Some(ResponseCode::Capabilities(caps)) => caps.iter().any(
                    |c| matches!(c, Capability::Atom(a) if a.eq_ignore_ascii_case("STARTTLS")),
                ),
                _ => false,
            },
            _ => false,
        }),
        Ok(None) => Err(ErrorKind::Closed),
        Err(e) => Err(e.into()),
    }
}

impl Imap {
    /// Connects, reads the greeting, upgrades to TLS as the endpoint's settings ask, and logs
    /// in.
    pub async fn login(
        at: &Endpoint<'_>,
        user: &str,
        password: &str,
        clock: &Clock,
    ) -> Result<Imap, MailError> {
        let (stream, mut tls) = open(at, clock).await?;
        let mut client = async_imap::Client::new(stream);
        let offered = clock.step("banner", greeting(&mut client)).await?;
        if let Some(t) = upgrade_with(at, offered, "starttls")? {
            clock
                .step("starttls", async {
                    client
                        .run_command_and_check_ok("STARTTLS", None)
                        .await
                        .map_err(kind)
                })
                .await?;
            let Stream::Plain(tcp) = client.into_inner() else {
                return Err(MailError::protocol("starttls", "TLS is already on"));
            };
            let (s, info) = clock
                .step("tls", async { Ok(t.handshake(tcp).await?) })
                .await?;
            tls = Some(info);
            client = async_imap::Client::new(s);
        }
        let session = clock
            .step("login", async {
                client.login(user, password).await.map_err(|(e, _)| kind(e))
            })
            .await?;
        Ok(Imap {
            session,
            clock: clock.clone(),
            tls,
            broken: None,
        })
    }

    /// Logs in as `user` with the master user's password (`user*master`).
    pub async fn master_login(
        at: &Endpoint<'_>,
        user: &str,
        master: &str,
        password: &str,
        clock: &Clock,
    ) -> Result<Imap, MailError> {
        let login = format!("{user}{MASTER_SEPARATOR}{master}");
        Self::login(at, &login, password, clock).await
    }

    /// What the TLS handshake found, when the session is encrypted.
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    /// Replaces the clock (a quiet one for a polling loop timed as one step).
    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    /// The clock in use.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Runs one command under the deadline; a timeout or a lost connection breaks the session.
    async fn call<T, F>(&mut self, step: &'static str, f: F) -> Result<T, MailError>
    where
        F: AsyncFnOnce(&mut Session) -> Result<T, async_imap::error::Error>,
    {
        if let Some(why) = &self.broken {
            return Err(MailError::new(step, ErrorKind::Broken(why.clone())));
        }
        let session = &mut self.session;
        let r = self
            .clock
            .step(step, async { f(session).await.map_err(kind) })
            .await;
        if let Err(e) = &r
            && matches!(
                e.kind(),
                ErrorKind::Timeout(_) | ErrorKind::Closed | ErrorKind::Io(_)
            )
        {
            self.broken = Some(format!("the session is unusable after an earlier {e}"));
        }
        r
    }

    /// `SELECT`: opens a mailbox for changes.
    pub async fn select(&mut self, mailbox: &str) -> Result<Mailbox, MailError> {
        self.call("select", async |s| s.select(mailbox).await).await
    }

    /// `EXAMINE`: opens a mailbox read-only.
    pub async fn examine(&mut self, mailbox: &str) -> Result<Mailbox, MailError> {
        self.call("examine", async |s| s.examine(mailbox).await)
            .await
    }

    /// `LIST "" pattern`: the mailboxes, with their attributes and delimiter.
    pub async fn list(&mut self, pattern: &str) -> Result<Vec<Name>, MailError> {
        self.call("list", async |s| {
            s.list(Some(""), Some(pattern)).await?.try_collect().await
        })
        .await
    }

    /// `STATUS mailbox (items)`.
    pub async fn status(&mut self, mailbox: &str, items: &str) -> Result<Mailbox, MailError> {
        self.call("status", async |s| s.status(mailbox, items).await)
            .await
    }

    /// `FETCH set query` on sequence numbers.
    pub async fn fetch(&mut self, set: &str, query: &str) -> Result<Vec<Fetch>, MailError> {
        self.call("fetch", async |s| {
            s.fetch(set, query).await?.try_collect().await
        })
        .await
    }

    /// `UID FETCH set query`.
    pub async fn uid_fetch(&mut self, set: &str, query: &str) -> Result<Vec<Fetch>, MailError> {
        self.call("fetch", async |s| {
            s.uid_fetch(set, query).await?.try_collect().await
        })
        .await
    }

    /// `UID SEARCH query`: the matching UIDs, ascending.
    pub async fn uid_search(&mut self, query: &str) -> Result<Vec<u32>, MailError> {
        let found = self
            .call("search", async |s| s.uid_search(query).await)
            .await?;
        let mut v: Vec<u32> = found.into_iter().collect();
        v.sort_unstable();
        Ok(v)
    }

    /// `APPEND`, with flags (`(\\Seen \\Flagged)`) and an internal date
    /// (`"18-Nov-2026 11:06:40 +0000"`) when given.
    pub async fn append(
        &mut self,
        mailbox: &str,
        flags: Option<&str>,
        internal_date: Option<&str>,
        message: &[u8],
    ) -> Result<(), MailError> {
        self.call("append", async |s| {
            s.append(mailbox, flags, internal_date, message).await
        })
        .await
    }

    /// `STORE set change` (`+FLAGS.SILENT (\\Deleted)`) on sequence numbers.
    pub async fn store(&mut self, set: &str, change: &str) -> Result<(), MailError> {
        self.call("store", async |s| {
            s.store(set, change).await?.try_collect::<Vec<_>>().await
        })
        .await
        .map(|_| ())
    }

    /// `UID STORE set change`.
    pub async fn uid_store(&mut self, set: &str, change: &str) -> Result<(), MailError> {
        self.call("store", async |s| {
            s.uid_store(set, change)
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await
        .map(|_| ())
    }

    /// `EXPUNGE`: the sequence numbers removed.
    pub async fn expunge(&mut self) -> Result<Vec<u32>, MailError> {
        self.call("expunge", async |s| s.expunge().await?.try_collect().await)
            .await
    }

    /// `UID EXPUNGE set` (UIDPLUS): removes only these.
    pub async fn uid_expunge(&mut self, set: &str) -> Result<Vec<u32>, MailError> {
        self.call("expunge", async |s| {
            s.uid_expunge(set).await?.try_collect().await
        })
        .await
    }

    /// `CREATE`.
    pub async fn create(&mut self, mailbox: &str) -> Result<(), MailError> {
        self.call("create", async |s| s.create(mailbox).await).await
    }

    /// `DELETE` of a mailbox.
    pub async fn delete_mailbox(&mut self, mailbox: &str) -> Result<(), MailError> {
        self.call("delete", async |s| s.delete(mailbox).await).await
    }

    /// `SUBSCRIBE`.
    pub async fn subscribe(&mut self, mailbox: &str) -> Result<(), MailError> {
        self.call("subscribe", async |s| s.subscribe(mailbox).await)
            .await
    }

    /// `COPY set mailbox` on sequence numbers.
    pub async fn copy(&mut self, set: &str, mailbox: &str) -> Result<(), MailError> {
        self.call("copy", async |s| s.copy(set, mailbox).await)
            .await
    }

    /// `NOOP`: the server reports what changed in the selected mailbox.
    pub async fn noop(&mut self) -> Result<(), MailError> {
        self.call("noop", async |s| s.noop().await).await
    }

    /// `LOGOUT`, best effort and not timed as a step: the session ends either way.
    pub async fn logout(mut self) {
        self.clock = self.clock.quiet();
        let _ = self.call("logout", async |s| s.logout().await).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_keeps_the_code_and_the_words() {
        assert_eq!(
            server_text("code: Some(TryCreate), info: Some(\"Mailbox doesn't exist: X\")"),
            "[TRYCREATE] Mailbox doesn't exist: X"
        );
        assert_eq!(
            server_text("code: None, info: Some(\"[UNAVAILABLE] Temporary \\\"failure\\\"\")"),
            "[UNAVAILABLE] Temporary \"failure\""
        );
        assert_eq!(
            server_text("code: Some(BadCharset(None)), info: None"),
            "[BADCHARSET] "
        );
        assert_eq!(server_text("something else"), "something else");
        let e = MailError::new(
            "login",
            kind(async_imap::error::Error::No(
                "code: None, info: Some(\"[AUTHENTICATIONFAILED] Authentication failed.\")".into(),
            )),
        );
        assert!(e.is_permanent(), "{e}");
        assert_eq!(
            e.server_text(),
            Some("[AUTHENTICATIONFAILED] Authentication failed.")
        );
    }
}

//! The LDAP directory: accounts as entries of an OpenLDAP (or Zimbra) server, via `ldap3`.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{NaiveDateTime, Utc};
use std::time::{Duration, Instant};

use ldap3::{Ldap, LdapError, Mod, Scope, SearchEntry, ldap_escape};

use super::ldap_conn::{Conn, open};
use super::{Directory, DirectoryError, Filter};
use crate::config::LdapConfig;
use crate::{Account, Address, SendBlock};

const LOCKED: &str = "locked";
const SEND_BLOCKED: &str = "send-blocked";
const GENERALIZED_TIME: &str = "%Y%m%d%H%M%SZ";
/// The ppolicy overlay's record of the last password change.
const PWD_CHANGED: &str = "pwdChangedTime";
/// LDAP result codes this backend tells apart (RFC 4511).
pub(super) const RC_NO_SUCH_OBJECT: u32 = 32;
const RC_ALREADY_EXISTS: u32 = 68;

/// Backoff between reconnection attempts: doubled after each failure, up to the last.
const RECONNECT_BACKOFF: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(30),
];

/// The connection's state: open, or lost with when to try again.
#[derive(Default)]
struct State {
    conn: Option<Conn>,
    failures: usize,
    retry_at: Option<(Instant, String)>,
}

/// Accounts in an LDAP directory. The connection is made and bound at open, and again,
/// with backoff, whenever it is lost (slapd restarted, a network cut).
pub struct LdapDirectory {
    config: LdapConfig,
    state: tokio::sync::Mutex<State>,
}

/// Whether an error means the connection is gone (a retry on a new one may succeed).
fn connection_lost(e: &LdapError) -> bool {
    matches!(
        e,
        LdapError::Io { .. }
            | LdapError::OpSend { .. }
            | LdapError::ResultRecv { .. }
            | LdapError::IdScrubSend { .. }
            | LdapError::EndOfStream
    )
}

impl LdapDirectory {
    /// Connects and binds with the password read from `password_file`.
    pub async fn connect(config: &LdapConfig) -> Result<Self, DirectoryError> {
        if !config.tls.verify {
            return Err(DirectoryError::Ldap {
                url: config.url.clone(),
                message: "directory.ldap.tls.verify = false: the directory's certificate is always verified; give its CA in tls.ca_file".into(),
            });
        }
        let conn = open(config).await?;
        Ok(LdapDirectory {
            config: config.clone(),
            state: tokio::sync::Mutex::new(State {
                conn: Some(conn),
                ..State::default()
            }),
        })
    }

    fn error(&self, message: impl std::fmt::Display) -> DirectoryError {
        DirectoryError::Ldap {
            url: self.config.url.clone(),
            message: message.to_string(),
        }
    }

    /// A handle on the open connection, connecting again first if it was lost (at most once
    /// per backoff step: meanwhile the last failure is answered at once).
    async fn handle(&self) -> Result<Ldap, DirectoryError> {
        let mut st = self.state.lock().await;
        if let Some(c) = &st.conn
            && !c.driver.is_finished()
        {
            let mut l = c.ldap.clone();
            l.with_timeout(self.config.timeout);
            return Ok(l);
        }
        st.conn = None;
        if let Some((at, why)) = &st.retry_at
            && Instant::now() < *at
        {
            return Err(self.error(format!(
                "the connection was lost and reconnecting failed ({why}); next attempt in {} s",
                at.duration_since(Instant::now()).as_secs().max(1)
            )));
        }
        match open(&self.config).await {
            Ok(c) => {
                if st.failures > 0 || st.retry_at.is_some() {
                    tracing::info!("{}: connected again", self.config.url);
                }
                let mut l = c.ldap.clone();
                l.with_timeout(self.config.timeout);
                *st = State {
                    conn: Some(c),
                    ..State::default()
                };
                Ok(l)
            }
            Err(e) => {
                let wait = RECONNECT_BACKOFF[st.failures.min(RECONNECT_BACKOFF.len() - 1)];
                st.failures += 1;
                st.retry_at = Some((Instant::now() + wait, e.to_string()));
                Err(e)
            }
        }
    }

    /// Forgets a connection found lost, so the next handle connects again.
    async fn lost(&self) {
        let mut st = self.state.lock().await;
        if let Some(c) = st.conn.take() {
            c.driver.abort();
        }
    }

    /// Runs an operation; on a connection found lost, once more on a new connection.
    async fn run<T, F, Fut>(&self, what: &str, f: F) -> Result<T, DirectoryError>
    where
        F: Fn(Ldap) -> Fut,
        Fut: std::future::Future<Output = Result<T, LdapError>>,
    {
        match f(self.handle().await?).await {
            Err(e) if connection_lost(&e) => {
                tracing::warn!(
                    "{}: connection lost ({e}); connecting again",
                    self.config.url
                );
                self.lost().await;
                f(self.handle().await?)
                    .await
                    .map_err(|e| self.error(format!("{what}: {e}")))
            }
            r => r.map_err(|e| self.error(format!("{what}: {e}"))),
        }
    }

    async fn search(&self, filter: &str) -> Result<Vec<SearchEntry>, DirectoryError> {
        let a = &self.config.attributes;
        let attrs = [
            a.address.as_str(),
            &a.mailbox_server,
            &a.password_hash,
            &a.status,
            &a.block_reason,
            &a.blocked_at,
            "objectClass",
            // Operational: returned only when asked for by name; present with ppolicy.
            PWD_CHANGED,
        ];
        let base = self.config.base_dn.as_str();
        let (entries, _) = self
            .run("search", |mut l| {
                let attrs = attrs.to_vec();
                async move { l.search(base, Scope::Subtree, filter, attrs).await }
            })
            .await?
            .success()
            .map_err(|e| self.error(format!("search {filter}: {e}")))?;
        // construct() panics only on BER the server sent malformed; ldap3 already decoded it.
        Ok(entries.into_iter().map(SearchEntry::construct).collect())
    }

    /// The entry of one address, if any.
    async fn entry(&self, address: &Address) -> Result<Option<SearchEntry>, DirectoryError> {
        let filter = format!(
            "({}={})",
            self.config.attributes.address,
            ldap_escape(address.as_str())
        );
        let mut found = self.search(&filter).await?;
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.pop()),
            n => Err(DirectoryError::Corrupt {
                entry: address.to_string(),
                message: format!(
                    "{n} entries under {} carry this address",
                    self.config.base_dn
                ),
            }),
        }
    }

    async fn entry_or_missing(&self, address: &Address) -> Result<SearchEntry, DirectoryError> {
        self.entry(address)
            .await?
            .ok_or_else(|| DirectoryError::NotFound(address.clone()))
    }

    async fn modify(&self, dn: &str, mods: Vec<Mod<String>>) -> Result<(), DirectoryError> {
        self.run("modify", |mut l| {
            let mods = mods.clone();
            async move { l.modify(dn, mods).await }
        })
        .await?
        .success()
        .map_err(|e| self.error(format!("modify {dn}: {e}")))?;
        Ok(())
    }

    /// Rewrites the status attributes of an entry from the account's new state.
    async fn write_status(
        &self,
        entry: &SearchEntry,
        account: &Account,
    ) -> Result<(), DirectoryError> {
        let a = &self.config.attributes;
        let mut flags = HashSet::new();
        if account.locked {
            flags.insert(LOCKED.to_string());
        }
        let mut mods = Vec::new();
        match &account.send_block {
            Some(b) => {
                flags.insert(SEND_BLOCKED.to_string());
                mods.push(Mod::Replace(
                    a.block_reason.clone(),
                    HashSet::from([b.reason.clone()]),
                ));
                mods.push(Mod::Replace(
                    a.blocked_at.clone(),
                    HashSet::from([b.since.format(GENERALIZED_TIME).to_string()]),
                ));
            }
            None => {
                mods.push(Mod::Replace(a.block_reason.clone(), HashSet::new()));
                mods.push(Mod::Replace(a.blocked_at.clone(), HashSet::new()));
            }
        }
        mods.push(Mod::Replace(a.status.clone(), flags));
        // Entries made by other tools lack the auxiliary class that allows the status attributes.
        let has_class = |c: &str| {
            values(entry, "objectClass")
                .iter()
                .any(|v| v.eq_ignore_ascii_case(c))
        };
        for class in &self.config.object_classes {
            if class.eq_ignore_ascii_case("mailfleetAccount") && !has_class(class) {
                mods.insert(
                    0,
                    Mod::Add("objectClass".to_string(), HashSet::from([class.clone()])),
                );
            }
        }
        self.modify(&entry.dn, mods).await
    }

    fn to_account(&self, e: &SearchEntry) -> Result<Account, DirectoryError> {
        let a = &self.config.attributes;
        let corrupt = |message: String| DirectoryError::Corrupt {
            entry: e.dn.clone(),
            message,
        };
        let address = first(e, &a.address).ok_or_else(|| corrupt(format!("no {}", a.address)))?;
        let address = Address::parse(&address).map_err(|err| corrupt(err.to_string()))?;
        let server = first(e, &a.mailbox_server)
            .ok_or_else(|| corrupt(format!("no {}", a.mailbox_server)))?;
        let flags = values(e, &a.status);
        let has = |f: &str| flags.iter().any(|v| v.eq_ignore_ascii_case(f));
        let send_block = if has(SEND_BLOCKED) {
            let since = match first(e, &a.blocked_at) {
                Some(t) => NaiveDateTime::parse_from_str(&t, GENERALIZED_TIME)
                    .map_err(|err| corrupt(format!("{} {t:?}: {err}", a.blocked_at)))?
                    .and_utc(),
                None => Utc::now(),
            };
            Some(SendBlock {
                reason: first(e, &a.block_reason).unwrap_or_default(),
                since,
            })
        } else {
            None
        };
        Ok(Account {
            address,
            server,
            password_hash: first(e, &a.password_hash),
            locked: has(LOCKED),
            send_block,
            // A value that does not parse is ignored: it only ever speeds up an unblock.
            // Seconds precision: OpenLDAP may add a fraction before the Z.
            password_changed: first(e, PWD_CHANGED).and_then(|t| {
                NaiveDateTime::parse_from_str(t.get(..14)?, "%Y%m%d%H%M%S")
                    .ok()
                    .map(|d| d.and_utc())
            }),
        })
    }
}

/// All values of an attribute, matching its name case-insensitively as LDAP does.
fn values(e: &SearchEntry, attr: &str) -> Vec<String> {
    let text = e
        .attrs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(attr))
        .flat_map(|(_, v)| v.iter().cloned());
    let binary = e
        .bin_attrs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(attr))
        .flat_map(|(_, v)| v.iter().map(|b| String::from_utf8_lossy(b).into_owned()));
    text.chain(binary).collect()
}

fn first(e: &SearchEntry, attr: &str) -> Option<String> {
    values(e, attr).into_iter().next()
}

#[async_trait]
impl Directory for LdapDirectory {
    async fn list(&self, filter: &Filter) -> Result<Vec<Account>, DirectoryError> {
        let a = &self.config.attributes;
        let mut f = format!("(&({}=*)({}=*)", a.address, a.mailbox_server);
        if let Some(d) = &filter.domain {
            f.push_str(&format!("({}=*@{})", a.address, ldap_escape(d.as_str())));
        }
        if let Some(s) = &filter.server {
            f.push_str(&format!(
                "({}={})",
                a.mailbox_server,
                ldap_escape(s.as_str())
            ));
        }
        if filter.locked {
            f.push_str(&format!("({}={LOCKED})", a.status));
        }
        f.push(')');
        let mut out = Vec::new();
        for e in self.search(&f).await? {
            let account = self.to_account(&e)?;
            // Substring matching follows the schema (case folding, escapes): check exactly too.
            if filter.matches(&account) {
                out.push(account);
            }
        }
        out.sort_by(|x, y| x.address.cmp(&y.address));
        Ok(out)
    }

    async fn get(&self, address: &Address) -> Result<Option<Account>, DirectoryError> {
        self.entry(address)
            .await?
            .map(|e| self.to_account(&e))
            .transpose()
    }

    async fn add(&self, accounts: &[Account]) -> Result<(), DirectoryError> {
        // LDAP has no transactions: check every address first so a duplicate adds nothing.
        for a in accounts {
            if self.entry(&a.address).await?.is_some() {
                return Err(DirectoryError::Duplicate(a.address.clone()));
            }
        }
        let attrs = &self.config.attributes;
        for a in accounts {
            let dn = format!(
                "{}={},{}",
                attrs.address,
                ldap3::dn_escape(a.address.as_str()),
                self.config.base_dn
            );
            let mut entry: Vec<(String, HashSet<String>)> = vec![
                (
                    "objectClass".into(),
                    self.config.object_classes.iter().cloned().collect(),
                ),
                (
                    attrs.address.clone(),
                    HashSet::from([a.address.to_string()]),
                ),
                (
                    attrs.mailbox_server.clone(),
                    HashSet::from([a.server.clone()]),
                ),
            ];
            let person = self.config.object_classes.iter().any(|c| {
                ["inetOrgPerson", "organizationalPerson", "person"]
                    .iter()
                    .any(|p| c.eq_ignore_ascii_case(p))
            });
            if person {
                entry.push(("cn".into(), HashSet::from([a.address.to_string()])));
                entry.push(("sn".into(), HashSet::from([a.address.local().to_string()])));
            }
            if let Some(h) = &a.password_hash {
                entry.push((attrs.password_hash.clone(), HashSet::from([h.clone()])));
            }
            let res = self
                .run("add", |mut l| {
                    let (dn, entry) = (dn.clone(), entry.clone());
                    async move { l.add(&dn, entry).await }
                })
                .await?;
            if res.rc == RC_ALREADY_EXISTS {
                return Err(DirectoryError::Duplicate(a.address.clone()));
            }
            res.success()
                .map_err(|e| self.error(format!("add {dn}: {e}")))?;
            if a.locked || a.send_block.is_some() {
                let e = self.entry_or_missing(&a.address).await?;
                self.write_status(&e, a).await?;
            }
        }
        Ok(())
    }

    async fn remove(&self, address: &Address) -> Result<(), DirectoryError> {
        let e = self.entry_or_missing(address).await?;
        let dn = e.dn.as_str();
        let res = self
            .run("delete", |mut l| async move { l.delete(dn).await })
            .await?;
        if res.rc == RC_NO_SUCH_OBJECT {
            return Err(DirectoryError::NotFound(address.clone()));
        }
        res.success()
            .map_err(|err| self.error(format!("delete {}: {err}", e.dn)))?;
        Ok(())
    }

    async fn set_server(&self, address: &Address, server: &str) -> Result<(), DirectoryError> {
        let e = self.entry_or_missing(address).await?;
        let attr = self.config.attributes.mailbox_server.clone();
        self.modify(
            &e.dn,
            vec![Mod::Replace(attr, HashSet::from([server.to_string()]))],
        )
        .await
    }

    async fn switch_server(
        &self,
        address: &Address,
        from: &str,
        to: &str,
    ) -> Result<(), DirectoryError> {
        let e = self.entry_or_missing(address).await?;
        let attr = self.config.attributes.mailbox_server.clone();
        // One modify: deleting a value the entry lacks fails the whole operation
        // (noSuchAttribute), so the server itself compares and sets.
        let mods = vec![
            Mod::Delete(attr.clone(), HashSet::from([from.to_string()])),
            Mod::Add(attr, HashSet::from([to.to_string()])),
        ];
        let dn = e.dn.clone();
        let res = self
            .run("modify", |mut l| {
                let (mods, dn) = (mods.clone(), dn.clone());
                async move { l.modify(&dn, mods).await }
            })
            .await?;
        match res.rc {
            0 => Ok(()),
            // noSuchAttribute: the value to replace is not there.
            16 => Err(DirectoryError::NotOn {
                address: address.clone(),
                expected: from.to_string(),
            }),
            _ => Err(self.error(format!("modify {}: {res}", e.dn))),
        }
    }

    async fn set_locked(&self, address: &Address, locked: bool) -> Result<(), DirectoryError> {
        let e = self.entry_or_missing(address).await?;
        let mut account = self.to_account(&e)?;
        account.locked = locked;
        self.write_status(&e, &account).await
    }

    async fn set_send_block(
        &self,
        address: &Address,
        block: Option<&SendBlock>,
    ) -> Result<(), DirectoryError> {
        let e = self.entry_or_missing(address).await?;
        let mut account = self.to_account(&e)?;
        account.send_block = block.cloned();
        self.write_status(&e, &account).await
    }

    async fn set_password_hash(
        &self,
        address: &Address,
        hash: Option<&str>,
    ) -> Result<(), DirectoryError> {
        let e = self.entry_or_missing(address).await?;
        let attr = self.config.attributes.password_hash.clone();
        let value: HashSet<String> = hash.map(str::to_string).into_iter().collect();
        self.modify(&e.dn, vec![Mod::Replace(attr, value)]).await
    }
}

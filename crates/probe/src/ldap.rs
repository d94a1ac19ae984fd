//! LDAP: bind and a search for the probe account (or the base entry when none is set), over
//! ldaps:// or StartTLS as the server's TLS settings ask, with the probes' own rustls config.

use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope};
use mailfleet_core::fleet::StartTls;

use crate::outcome::{Failure, Run};
use mailfleet_mailclient::tls::{Tls, TlsInfo};

/// An open connection: the handle, its driver task, and what TLS showed.
struct Conn {
    ldap: Ldap,
    driver: tokio::task::JoinHandle<()>,
    tls: Option<TlsInfo>,
}

impl Conn {
    async fn close(mut self) {
        let _ = self.ldap.unbind().await;
        self.driver.abort();
    }
}

async fn open(
    url: &str,
    settings: LdapConnSettings,
    timeout: Duration,
) -> Result<Conn, ldap3::LdapError> {
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, url).await?;
    let driver = tokio::spawn(async move {
        let _ = conn.drive().await;
    });
    ldap.with_timeout(timeout);
    Ok(Conn {
        ldap,
        driver,
        tls: None,
    })
}

/// Connects: TLS from the start on ldaps://; on ldap:// StartTLS unless switched off. In
/// `auto` mode a server that refuses StartTLS (not one whose certificate fails) is used in
/// clear text.
async fn connect(
    run: &mut Run,
    url: &str,
    tls: Option<&Tls>,
    timeout: Duration,
) -> Result<Conn, Failure> {
    let base = || LdapConnSettings::new().set_conn_timeout(timeout);
    let Some(t) = tls.filter(|t| url.starts_with("ldaps://") || t.starttls != StartTls::Off) else {
        return run.step("connect", open(url, base(), timeout)).await;
    };
    let ldaps = url.starts_with("ldaps://");
    let settings = base().set_config(t.client_config()).set_starttls(!ldaps);
    let name = if ldaps { "connect" } else { "connect+starttls" };
    let attempt = run.step(name, open(url, settings, timeout)).await;
    match attempt {
        Ok(mut c) => {
            let info = t.info(if ldaps { "TLS" } else { "StartTLS" });
            run.note_tls(Some(&info));
            c.tls = Some(info);
            Ok(c)
        }
        Err(f) if !ldaps && t.starttls == StartTls::Auto && !f.message.contains("certificate") => {
            run.step("connect", open(url, base(), timeout)).await
        }
        Err(f) => Err(f),
    }
}

/// What the LDAP check needs.
pub struct LdapTarget<'a> {
    /// `ldap://host:port` or `ldaps://host:port`.
    pub url: String,
    /// The server's TLS settings.
    pub tls: Option<&'a Tls>,
    /// Bind DN and password, or anonymous.
    pub bind: Option<(&'a str, String)>,
    /// Where to search.
    pub base_dn: &'a str,
    /// The filter, e.g. `(mail=probe@example.com)`.
    pub filter: String,
}

/// Binds and searches; the search must find at least one entry.
pub async fn check(
    run: &mut Run,
    t: &LdapTarget<'_>,
    timeout: Duration,
) -> Result<String, Failure> {
    let mut c = connect(run, &t.url, t.tls, timeout).await?;
    let ldap = &mut c.ldap;
    if let Some((dn, pw)) = &t.bind {
        run.step("bind", async { ldap.simple_bind(dn, pw).await?.success() })
            .await?;
    }
    let found = run
        .step("search", async {
            let (entries, _) = ldap
                .search(t.base_dn, Scope::Subtree, &t.filter, vec!["1.1"])
                .await?
                .success()?;
            Ok::<usize, ldap3::LdapError>(entries.len())
        })
        .await?;
    let tls = c.tls.clone();
    c.close().await;
    if found == 0 {
        return Err(Failure::new(
            "search",
            format!("nothing matches {} under {}", t.filter, t.base_dn),
        ));
    }
    let tls = tls.map_or(String::new(), |t| format!("; {}", t.summary()));
    Ok(format!("{found} entries match {}{tls}", t.filter))
}

/// The newest `contextCSN` of the server's naming context (`None`: it has none yet).
pub async fn context_csn(
    run: &mut Run,
    url: &str,
    tls: Option<&Tls>,
    bind: Option<(&str, &str)>,
    timeout: Duration,
) -> Result<Option<String>, Failure> {
    let mut c = connect(run, url, tls, timeout).await?;
    let ldap = &mut c.ldap;
    if let Some((dn, pw)) = bind {
        run.step("bind", async { ldap.simple_bind(dn, pw).await?.success() })
            .await?;
    }
    let csns = run
        .step("contextCSN", async {
            let (root, _) = ldap
                .search("", Scope::Base, "(objectClass=*)", vec!["namingContexts"])
                .await?
                .success()?;
            let Some(root) = root.into_iter().next() else {
                return Ok::<Vec<String>, ldap3::LdapError>(Vec::new());
            };
            let contexts = ldap3::SearchEntry::construct(root)
                .attrs
                .remove("namingContexts")
                .unwrap_or_default();
            let mut csns = Vec::new();
            for ctx in contexts {
                let (entries, _) = ldap
                    .search(&ctx, Scope::Base, "(objectClass=*)", vec!["contextCSN"])
                    .await?
                    .success()?;
                for e in entries {
                    csns.extend(
                        ldap3::SearchEntry::construct(e)
                            .attrs
                            .remove("contextCSN")
                            .unwrap_or_default(),
                    );
                }
            }
            Ok(csns)
        })
        .await?;
    c.close().await;
    // CSNs start with a GeneralizedTime: the lexically greatest is the newest.
    Ok(csns.into_iter().max())
}

/// The time part of a CSN (`20261123112640.123456Z#000000#000#000000`).
pub fn csn_time(csn: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let stamp = csn.split('#').next()?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%d%H%M%S%.fZ")
        .ok()
        .map(|t| t.and_utc())
}

//! LDAP: bind and a search for the probe account (or the base entry when none is set).

use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, Scope};

use crate::outcome::{Failure, Run};

/// What the LDAP check needs.
pub struct LdapTarget<'a> {
    /// `ldap://host:port`.
    pub url: String,
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
    let settings = LdapConnSettings::new().set_conn_timeout(timeout);
    let (conn, mut ldap) = run
        .step("connect", LdapConnAsync::with_settings(settings, &t.url))
        .await?;
    let driver = tokio::spawn(conn.drive());
    ldap.with_timeout(timeout);
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
    let _ = ldap.unbind().await;
    driver.abort();
    if found == 0 {
        return Err(Failure::new(
            "search",
            format!("nothing matches {} under {}", t.filter, t.base_dn),
        ));
    }
    Ok(format!("{found} entries match {}", t.filter))
}

/// The newest `contextCSN` of the server's naming context (`None`: it has none yet).
pub async fn context_csn(
    run: &mut Run,
    url: &str,
    bind: Option<(&str, &str)>,
    timeout: Duration,
) -> Result<Option<String>, Failure> {
    let settings = LdapConnSettings::new().set_conn_timeout(timeout);
    let (conn, mut ldap) = run
        .step("connect", LdapConnAsync::with_settings(settings, url))
        .await?;
    let driver = tokio::spawn(conn.drive());
    ldap.with_timeout(timeout);
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
    let _ = ldap.unbind().await;
    driver.abort();
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

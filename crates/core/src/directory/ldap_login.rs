//! Dashboard logins against the LDAP directory: an account's own bind, limited to the
//! members of a group.

use ldap3::{LdapError, Scope, SearchEntry, ldap_escape};

use super::DirectoryError;
use super::ldap::RC_NO_SUCH_OBJECT;
use super::ldap_conn::{Conn, connected, open};
use crate::config::LdapConfig;

/// RFC 4511's invalidCredentials.
const RC_INVALID_CREDENTIALS: u32 = 49;

/// A login of the dashboard against the directory: `login` is an account's address, whose
/// entry must bind with `password` and be a member of `group_dn` (`member` or `uniqueMember`
/// naming the entry, or `memberUid` the login). `Ok(false)` for an unknown account, a wrong
/// password or no membership alike; an empty password is refused before any bind (LDAP
/// takes it as an anonymous bind that "succeeds").
pub async fn group_login(
    config: &LdapConfig,
    group_dn: &str,
    login: &str,
    password: &str,
) -> Result<bool, DirectoryError> {
    if password.is_empty() || login.trim().is_empty() {
        return Ok(false);
    }
    let err = |e: String| DirectoryError::Ldap {
        url: config.url.clone(),
        message: e,
    };
    let Conn { mut ldap, driver } = open(config).await?;
    let looked_up = async {
        let filter = format!("({}={})", config.attributes.address, ldap_escape(login));
        let (found, _) = ldap
            .search(&config.base_dn, Scope::Subtree, &filter, vec!["1.1"])
            .await
            .map_err(|e| err(e.to_string()))?
            .success()
            .map_err(|e| err(format!("searching {filter}: {e}")))?;
        let [entry] = &found[..] else {
            return Ok::<_, DirectoryError>(None);
        };
        let dn = SearchEntry::construct(entry.clone()).dn;
        let member = format!(
            "(|(member={d})(uniqueMember={d})(memberUid={l}))",
            d = ldap_escape(&dn),
            l = ldap_escape(login)
        );
        let groups = match ldap
            .search(group_dn, Scope::Base, &member, vec!["1.1"])
            .await
        {
            Ok(r) => match r.success() {
                Ok((g, _)) => g,
                Err(LdapError::LdapResult { result }) if result.rc == RC_NO_SUCH_OBJECT => {
                    return Err(err(format!("serve.ldap_group {group_dn}: no such entry")));
                }
                Err(e) => return Err(err(format!("reading {group_dn}: {e}"))),
            },
            Err(e) => return Err(err(e.to_string())),
        };
        Ok((!groups.is_empty()).then_some(dn))
    }
    .await;
    let _ = ldap.unbind().await;
    driver.abort();
    let Some(dn) = looked_up? else {
        return Ok(false);
    };
    // The account's own bind, on a connection of its own.
    let Conn { mut ldap, driver } = connected(config).await?;
    let bound = ldap
        .with_timeout(config.timeout)
        .simple_bind(&dn, password)
        .await
        .map_err(|e| err(e.to_string()));
    let _ = ldap.unbind().await;
    driver.abort();
    match bound?.rc {
        0 => Ok(true),
        RC_INVALID_CREDENTIALS => Ok(false),
        rc => Err(err(format!("bind as {dn}: result code {rc}"))),
    }
}

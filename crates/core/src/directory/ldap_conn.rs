//! A connection to the LDAP directory: TLS as the config says, verified; bound as mailfleet
//! ([`open`]) or not yet bound ([`connected`]), with the task that drives it.

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings};

use super::DirectoryError;
use crate::config::LdapConfig;
use crate::fleet::StartTls;

/// An open, bound connection and the task that drives it.
pub(super) struct Conn {
    pub(super) ldap: Ldap,
    pub(super) driver: tokio::task::JoinHandle<()>,
}

/// Connects and binds: TLS from the first byte on `ldaps://`, StartTLS on `ldap://` as
/// `tls.starttls` says (`auto`: when the server accepts it; a certificate that fails is an
/// error either way), verified against the system's CAs and `tls.ca_file`.
pub(super) async fn open(config: &LdapConfig) -> Result<Conn, DirectoryError> {
    let err = |e: String| DirectoryError::Ldap {
        url: config.url.clone(),
        message: e,
    };
    let password =
        std::fs::read_to_string(&config.password_file).map_err(|source| DirectoryError::Io {
            path: config.password_file.display().to_string(),
            source,
        })?;
    let password = password.lines().next().unwrap_or("");
    let Conn { mut ldap, driver } = connected(config).await?;
    let bound = ldap
        .with_timeout(config.timeout)
        .simple_bind(&config.bind_dn, password)
        .await
        .map_err(|e| err(e.to_string()))
        .and_then(|r| {
            r.success()
                .map_err(|e| err(format!("bind as {}: {e}", config.bind_dn)))
        });
    if let Err(e) = bound {
        driver.abort();
        return Err(e);
    }
    Ok(Conn { ldap, driver })
}

/// Connects as [`open`] does, without binding.
pub(super) async fn connected(config: &LdapConfig) -> Result<Conn, DirectoryError> {
    let err = |e: String| DirectoryError::Ldap {
        url: config.url.clone(),
        message: e,
    };
    let base = || LdapConnSettings::new().set_conn_timeout(config.timeout);
    let ldaps = config.url.starts_with("ldaps://");
    let wants_tls = ldaps || config.tls.starttls != StartTls::Off;
    let settings = if wants_tls {
        let tls = crate::tls::strict_client(config.tls.ca_file.as_deref())
            .map_err(|e| err(format!("directory.ldap.{e}")))?;
        base().set_config(tls).set_starttls(!ldaps)
    } else {
        base()
    };
    let connected = match LdapConnAsync::with_settings(settings, &config.url).await {
        Ok(c) => Ok(c),
        // A server that refuses StartTLS (not one whose certificate fails) in `auto` mode.
        Err(e)
            if !ldaps
                && config.tls.starttls == StartTls::Auto
                && !e.to_string().to_lowercase().contains("certificate") =>
        {
            tracing::warn!(
                "{}: StartTLS refused ({e}); the directory is read in clear text (tls.starttls = \"auto\")",
                config.url
            );
            LdapConnAsync::with_settings(base(), &config.url).await
        }
        Err(e) => Err(e),
    };
    let (conn, ldap) = connected.map_err(|e| err(e.to_string()))?;
    let url = config.url.clone();
    let driver = tokio::spawn(async move {
        if let Err(e) = conn.drive().await {
            tracing::warn!("LDAP connection to {url} ended: {e}");
        }
    });
    Ok(Conn { ldap, driver })
}

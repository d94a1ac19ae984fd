//! The demo's own small PKI: a CA and one server certificate for every daemon on the stack's
//! host, made once with rcgen. The generated config trusts the CA (`tls.ca_file`), so the
//! probes verify certificates the way they would in production.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};

use crate::{StackError, io_err};

/// The files of the demo PKI.
#[derive(Debug, Clone)]
pub struct Certs {
    /// The CA certificate (PEM) clients trust.
    pub ca: PathBuf,
    /// The server certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM), readable by root only.
    pub key: PathBuf,
}

impl Certs {
    /// The files under `dir`.
    pub fn at(dir: &Path) -> Self {
        Certs {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        }
    }
}

fn tls_err(e: rcgen::Error) -> StackError {
    StackError::State(format!("making the demo certificates: {e}"))
}

/// How long the demo certificates are valid: like a real certificate, so the probes' expiry
/// report shows a realistic number.
pub const VALID_DAYS: i64 = 365;

/// Makes the CA and a certificate valid for `host`, every server's own address and the demo's
/// names, unless they exist for exactly those (a stack made before a server was added gets
/// new ones).
pub fn ensure(dir: &Path, host: &str) -> Result<Certs, StackError> {
    let certs = Certs::at(dir);
    let mut hosts = vec![host.to_string()];
    for (_, addr) in crate::layout::ssh_hosts(host) {
        if !hosts.contains(&addr) {
            hosts.push(addr);
        }
    }
    let made_for = dir.join("hosts");
    let wanted = hosts.join("\n");
    if certs.ca.exists()
        && certs.cert.exists()
        && certs.key.exists()
        && std::fs::read_to_string(&made_for).is_ok_and(|h| h == wanted)
    {
        return Ok(certs);
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "mailfleet demo CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca =
        CertifiedIssuer::self_signed(ca, KeyPair::generate().map_err(tls_err)?).map_err(tls_err)?;
    let mut names = vec!["localhost".to_string()];
    for (n, _) in crate::layout::SSH_SERVERS {
        names.push(format!("{n}.mailfleet.test"));
    }
    let mut leaf = CertificateParams::new(names).map_err(tls_err)?;
    let now = time::OffsetDateTime::now_utc();
    leaf.not_before = now - time::Duration::days(1);
    leaf.not_after = now + time::Duration::days(VALID_DAYS);
    leaf.distinguished_name
        .push(DnType::CommonName, "mailfleet demo server");
    for host in &hosts {
        match host.parse::<std::net::IpAddr>() {
            Ok(ip) => leaf.subject_alt_names.push(SanType::IpAddress(ip)),
            Err(_) => leaf.subject_alt_names.push(SanType::DnsName(
                host.to_string().try_into().map_err(tls_err)?,
            )),
        }
    }
    let key = KeyPair::generate().map_err(tls_err)?;
    let cert = leaf.signed_by(&key, &ca).map_err(tls_err)?;
    write(&certs.ca, &ca.pem(), 0o644)?;
    write(&certs.cert, &cert.pem(), 0o644)?;
    write(&certs.key, &key.serialize_pem(), 0o600)?;
    write(&made_for, &wanted, 0o644)?;
    Ok(certs)
}

fn write(path: &Path, content: &str, mode: u32) -> Result<(), StackError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content).map_err(io_err(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_err(path))
}

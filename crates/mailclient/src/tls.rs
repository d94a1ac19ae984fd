//! TLS (rustls) for every client: implicit TLS on the `*s` ports and STARTTLS upgrades on the
//! plain ones. Verification follows the server's `tls` settings; relaxed verification still
//! checks the handshake's signatures and says what strict checking would have refused.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use mailfleet_core::fleet::{StartTls, TlsSettings};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A certificate expiring sooner than this makes the check WARNING.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

/// A client's connection: plain TCP, or TLS over it.
#[derive(Debug)]
pub enum Stream {
    /// Clear text.
    Plain(TcpStream),
    /// TLS (boxed: the session state is large).
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// What a handshake found.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    /// `TLSv1.3`...
    pub version: String,
    /// Days until the server certificate expires (negative: expired).
    pub days_left: Option<i64>,
    /// What strict verification refused, when verification is relaxed.
    pub unverified: Option<String>,
}

impl TlsInfo {
    /// One line for the check's message.
    pub fn summary(&self) -> String {
        let mut s = self.version.clone();
        if let Some(d) = self.days_left {
            s.push_str(&format!(", certificate expires in {d} days"));
        }
        if let Some(u) = &self.unverified {
            s.push_str(&format!(", not verified ({u})"));
        }
        s
    }

    /// Why the certificate needs a human soon, if it does.
    pub fn warning(&self) -> Option<String> {
        match self.days_left {
            Some(d) if d < 0 => Some(format!("certificate expired {} days ago", -d)),
            Some(d) if d < EXPIRY_WARNING_DAYS => Some(format!("certificate expires in {d} days")),
            _ => None,
        }
    }
}

pub use mailfleet_core::tls::TlsError;

/// TLS as one server's settings ask for it.
#[derive(Clone)]
pub struct Tls {
    config: Arc<ClientConfig>,
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
    /// When to upgrade plain connections.
    pub starttls: StartTls,
    seen: Arc<Mutex<Seen>>,
}

/// What the verifier saw of the last certificate: read after a handshake done by us or by a
/// library given our config (ldap3).
#[derive(Debug, Default)]
struct Seen {
    days_left: Option<i64>,
    refused: Option<String>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("name", &self.name)
            .field("starttls", &self.starttls)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// TLS for a server reached as `host`.
    pub fn new(settings: &TlsSettings, host: &str) -> Result<Tls, TlsError> {
        let roots = mailfleet_core::tls::roots(settings.ca_file.as_deref())?;
        let name_text = settings.server_name.as_deref().unwrap_or(host);
        let name = ServerName::try_from(name_text.to_string())
            .map_err(|_| TlsError::Name(name_text.to_string()))?;
        let provider = mailfleet_core::tls::provider();
        let strict = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let verifier = Arc::new(Recorder {
            strict,
            enforce: settings.verify,
            seen: seen.clone(),
        });
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        let config = Arc::new(config);
        Ok(Tls {
            connector: tokio_rustls::TlsConnector::from(config.clone()),
            config,
            name,
            starttls: settings.starttls,
            seen,
        })
    }

    /// The rustls config, for libraries that do their own handshake (ldap3).
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// What the last handshake with this config showed of the certificate.
    pub fn info(&self, version: &str) -> TlsInfo {
        let (days_left, unverified) = self
            .seen
            .lock()
            .map(|mut s| (s.days_left, s.refused.take()))
            .unwrap_or((None, None));
        TlsInfo {
            version: version.to_string(),
            days_left,
            unverified,
        }
    }

    /// The TLS handshake over a connected socket.
    pub async fn handshake(&self, tcp: TcpStream) -> io::Result<(Stream, TlsInfo)> {
        let s = self.connector.connect(self.name.clone(), tcp).await?;
        let (_, conn) = s.get_ref();
        let version = conn
            .protocol_version()
            .and_then(|v| v.as_str())
            .unwrap_or("TLS")
            .replace('_', ".");
        let info = self.info(&version);
        Ok((Stream::Tls(Box::new(s)), info))
    }
}

fn days_left(der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let not_after = cert.validity().not_after.timestamp();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs() as i64;
    Some((not_after - now).div_euclid(86_400))
}

/// Verifies with webpki and records the certificate's expiry; when verification is relaxed
/// it accepts what webpki refused but records why. Handshake signatures are always verified,
/// so the peer must hold the certificate's key.
#[derive(Debug)]
struct Recorder {
    strict: Arc<WebPkiServerVerifier>,
    enforce: bool,
    seen: Arc<Mutex<Seen>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict =
            self.strict
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        if let Ok(mut s) = self.seen.lock() {
            s.days_left = days_left(end_entity.as_ref());
            s.refused = verdict.as_ref().err().map(ToString::to_string);
        }
        match verdict {
            Err(e) if self.enforce => Err(e),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.strict.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.strict.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.strict.supported_verify_schemes()
    }
}

/// Where a check connects, and how it uses TLS there.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint<'a> {
    /// Host name or address.
    pub host: &'a str,
    /// Port.
    pub port: u16,
    /// The server's TLS settings; `None`: clear text only.
    pub tls: Option<&'a Tls>,
    /// TLS from the first byte (the `*s` ports) instead of STARTTLS.
    pub implicit: bool,
}

impl<'a> Endpoint<'a> {
    /// A clear-text endpoint.
    pub fn plain(host: &'a str, port: u16) -> Self {
        Endpoint {
            host,
            port,
            tls: None,
            implicit: false,
        }
    }
}

/// Whether a plain connection should be upgraded with STARTTLS, given whether the server
/// offers it; an error when the settings require it and it is not offered.
pub fn should_upgrade(tls: Option<&Tls>, offered: bool) -> Result<bool, String> {
    match tls.map(|t| t.starttls) {
        None | Some(StartTls::Off) => Ok(false),
        Some(StartTls::Auto) => Ok(offered),
        Some(StartTls::Require) if offered => Ok(true),
        Some(StartTls::Require) => {
            Err("the server does not offer STARTTLS (tls.starttls = \"require\")".into())
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn cert_expiring_in(days: i64) -> Vec<u8> {
        let mut p = rcgen::CertificateParams::new(vec!["a.test".to_string()]).unwrap();
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::days(400);
        p.not_after = now + time::Duration::days(days) + time::Duration::hours(1);
        let key = rcgen::KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    fn info(days_left: Option<i64>) -> TlsInfo {
        TlsInfo {
            version: "TLSv1.3".into(),
            days_left,
            unverified: None,
        }
    }

    #[test]
    fn expiry_is_read_from_the_certificate() {
        assert_eq!(days_left(&cert_expiring_in(30)), Some(30));
        assert_eq!(days_left(&cert_expiring_in(-3)), Some(-3));
        assert_eq!(days_left(b"not a certificate"), None);
    }

    #[test]
    fn a_certificate_near_or_past_expiry_warns() {
        assert_eq!(info(Some(90)).warning(), None);
        assert_eq!(info(None).warning(), None);
        assert_eq!(
            info(Some(5)).warning().as_deref(),
            Some("certificate expires in 5 days")
        );
        assert_eq!(
            info(Some(-2)).warning().as_deref(),
            Some("certificate expired 2 days ago")
        );
    }

    #[test]
    fn starttls_policy() {
        let settings = |starttls| TlsSettings {
            starttls,
            ..TlsSettings::default()
        };
        let auto = Tls::new(&settings(StartTls::Auto), "127.0.0.1").unwrap();
        let req = Tls::new(&settings(StartTls::Require), "127.0.0.1").unwrap();
        let off = Tls::new(&settings(StartTls::Off), "127.0.0.1").unwrap();
        assert!(should_upgrade(Some(&auto), true).unwrap());
        assert!(!should_upgrade(Some(&auto), false).unwrap());
        assert!(should_upgrade(Some(&req), true).unwrap());
        assert!(should_upgrade(Some(&req), false).is_err());
        assert!(!should_upgrade(Some(&off), true).unwrap());
        assert!(!should_upgrade(None, true).unwrap());
    }

    #[test]
    fn a_bad_ca_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("ca.pem");
        std::fs::write(&empty, "no certificates here\n").unwrap();
        let s = TlsSettings {
            ca_file: Some(empty),
            ..TlsSettings::default()
        };
        let e = Tls::new(&s, "127.0.0.1").unwrap_err().to_string();
        assert!(e.contains("ca.pem") && e.contains("no certificate"), "{e}");
        let missing = TlsSettings {
            ca_file: Some(dir.path().join("missing.pem")),
            ..TlsSettings::default()
        };
        let e = Tls::new(&missing, "127.0.0.1").unwrap_err().to_string();
        assert!(e.contains("missing.pem"), "{e}");
    }
}

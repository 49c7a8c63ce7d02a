//! TLS for the web server and for outbound HTTP (cargo feature `tls`): rustls with the ring
//! provider only, driven on the work thread by futures-rustls over `Async<TcpStream>`.
//!
//! Owns: building rustls configs from `tls_server_config` (web config) and from a scrape
//! job's `tls_config`, reading PEM files, re-reading the server's certificate files when they
//! change, and the `insecure_skip_verify` verifier.
//! Must not touch: HTTP (src/http/server.rs and src/scrape/client.rs wrap the streams).
//!
//! Trust roots for outbound TLS come from `ca_file` or the system bundle
//! ([`SYSTEM_CA_BUNDLES`]); no roots are compiled in (webpki-roots would add ~250 KB and go
//! stale on devices that are never updated).

use crate::http::webconfig::{ClientAuth, FileStamp, TlsServerConfig, TlsVersion};
pub use crate::scrape::config::TlsConfig as ClientTlsConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme, SupportedProtocolVersion};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use futures_rustls::{client::TlsStream as ClientStream, server::TlsStream as ServerStream};
pub use futures_rustls::{TlsAcceptor, TlsConnector};

/// Where Debian/Ubuntu/Alpine/OpenWrt (ca-certificates) and Fedora keep the system's roots.
pub const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/ssl/cert.pem",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no PEM certificates in {}", path.display()));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("cannot read a private key from {}: {e}", path.display()))
}

fn roots(path: &Path) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(certs(path)?);
    if added == 0 {
        return Err(format!("no usable CA certificates in {}", path.display()));
    }
    Ok(store)
}

fn versions(min: TlsVersion, max: TlsVersion) -> Vec<&'static SupportedProtocolVersion> {
    let mut v = Vec::new();
    if min <= TlsVersion::Tls13 && max >= TlsVersion::Tls13 {
        v.push(&rustls::version::TLS13);
    }
    if min <= TlsVersion::Tls12 && max >= TlsVersion::Tls12 {
        v.push(&rustls::version::TLS12);
    }
    v
}

/// The ring provider, its TLS 1.2 suites limited to `names` (Go's IANA names) if given.
fn provider(names: &[String]) -> Result<Arc<CryptoProvider>, String> {
    let mut p = ring::default_provider();
    if !names.is_empty() {
        for n in names {
            let known = p.cipher_suites.iter().any(|s| suite_matches(s, n));
            if !known {
                let have: Vec<String> = p
                    .cipher_suites
                    .iter()
                    .filter(|s| s.tls13().is_none())
                    .map(|s| format!("{:?}", s.suite()))
                    .collect();
                return Err(format!(
                    "unsupported cipher suite {n:?} (supported: {})",
                    have.join(", ")
                ));
            }
        }
        p.cipher_suites
            .retain(|s| s.tls13().is_some() || names.iter().any(|n| suite_matches(s, n)));
    }
    Ok(Arc::new(p))
}

/// Go spells the ChaCha20 suites without `_SHA256`; rustls with it.
fn suite_matches(s: &rustls::SupportedCipherSuite, name: &str) -> bool {
    let have = format!("{:?}", s.suite());
    have == name || have == format!("{name}_SHA256")
}

/// Builds a rustls server config from `tls_server_config`.
pub fn server_config(cfg: &TlsServerConfig) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = provider(&cfg.cipher_suites)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(cfg.min_version, cfg.max_version))
        .map_err(|e| format!("TLS versions: {e}"))?;
    let verifier = |optional: bool| -> Result<_, String> {
        let ca = cfg
            .client_ca_file
            .as_deref()
            .ok_or("client_ca_file is required")?;
        let mut b = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots(ca)?),
            provider.clone(),
        );
        if optional {
            b = b.allow_unauthenticated();
        }
        b.build()
            .map_err(|e| format!("client CA {}: {e}", ca.display()))
    };
    let builder = match cfg.client_auth {
        ClientAuth::NoClientCert => builder.with_no_client_auth(),
        ClientAuth::VerifyClientCertIfGiven => builder.with_client_cert_verifier(verifier(true)?),
        ClientAuth::RequireAndVerifyClientCert => {
            builder.with_client_cert_verifier(verifier(false)?)
        }
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
            return Err(format!(
                "client_auth_type {:?} (accepting unverified client certificates) is not \
                 supported; use VerifyClientCertIfGiven or RequireAndVerifyClientCert",
                cfg.client_auth
            ))
        }
    };
    let mut config = builder
        .with_single_cert(certs(&cfg.cert_file)?, key(&cfg.key_file)?)
        .map_err(|e| format!("certificate {}: {e}", cfg.cert_file.display()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The server's TLS settings, rebuilt when the web config's `tls_server_config` or one of its
/// files changes (certificate renewal without a restart, as exporter-toolkit does).
pub struct ServerTls {
    current: RefCell<(
        TlsServerConfig,
        Vec<Option<FileStamp>>,
        Arc<rustls::ServerConfig>,
    )>,
}

fn stamps(cfg: &TlsServerConfig) -> Vec<Option<FileStamp>> {
    let mut files: Vec<&PathBuf> = vec![&cfg.cert_file, &cfg.key_file];
    files.extend(cfg.client_ca_file.as_ref());
    files.into_iter().map(|p| FileStamp::of(p)).collect()
}

impl ServerTls {
    /// Builds the initial config; an error here should stop start-up.
    pub fn new(cfg: &TlsServerConfig) -> Result<ServerTls, String> {
        let built = server_config(cfg)?;
        Ok(ServerTls {
            current: RefCell::new((cfg.clone(), stamps(cfg), built)),
        })
    }

    /// The rustls config for a new connection, given the `tls_server_config` in force now
    /// (None: the web config no longer has one; the start-up settings stay). If a changed
    /// setting or file does not load, the error is returned and the connection refused.
    pub fn config_for(
        &self,
        now: Option<&TlsServerConfig>,
    ) -> Result<Arc<rustls::ServerConfig>, String> {
        let mut cur = self.current.borrow_mut();
        let cfg = now.unwrap_or(&cur.0).clone();
        let st = stamps(&cfg);
        if cfg != cur.0 || st != cur.1 {
            let built = server_config(&cfg)?;
            crate::log::info("TLS server settings reloaded");
            *cur = (cfg, st, built);
        }
        Ok(cur.2.clone())
    }
}

/// A ready client config plus the server name override.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
    server_name: Option<String>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Reads the CA bundle (or the system's) and the client certificate, if any.
    pub fn new(cfg: &ClientTlsConfig) -> Result<ClientTls, String> {
        let provider = Arc::new(ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = if cfg.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(SkipVerify(provider)))
        } else {
            let store = match &cfg.ca_file {
                Some(p) => roots(p)?,
                None => {
                    let bundle = SYSTEM_CA_BUNDLES
                        .iter()
                        .map(Path::new)
                        .find(|p| p.exists())
                        .ok_or_else(|| {
                            format!(
                                "no ca_file given and no system CA bundle found (looked for {})",
                                SYSTEM_CA_BUNDLES.join(", ")
                            )
                        })?;
                    roots(bundle)?
                }
            };
            builder.with_root_certificates(store)
        };
        let config = match (&cfg.cert_file, &cfg.key_file) {
            (Some(c), Some(k)) => builder
                .with_client_auth_cert(certs(c)?, key(k)?)
                .map_err(|e| format!("client certificate {}: {e}", c.display()))?,
            (None, None) => builder.with_no_client_auth(),
            _ => return Err("tls_config needs both cert_file and key_file, or neither".into()),
        };
        Ok(ClientTls {
            config: Arc::new(config),
            server_name: cfg.server_name.clone(),
        })
    }

    /// The connector and the name to verify: the configured `server_name`, else `host`
    /// (a `host:port` or bare host; IP literals verify against IP SANs).
    pub fn connector(&self, host: &str) -> Result<(TlsConnector, ServerName<'static>), String> {
        let name = match &self.server_name {
            Some(n) => n.clone(),
            None => host_only(host).to_string(),
        };
        let sn = ServerName::try_from(name.clone())
            .map_err(|_| format!("invalid TLS server name {name:?}"))?;
        Ok((TlsConnector::from(self.config.clone()), sn))
    }
}

/// `host:port`, `[v6]:port`, `host` → the host part without brackets.
fn host_only(hostport: &str) -> &str {
    if let Some(rest) = hostport.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => hostport,
    }
}

/// `insecure_skip_verify: true`: any certificate is accepted, but the handshake signatures
/// are still checked (so the peer must hold the key of the certificate it sent).
#[derive(Debug)]
struct SkipVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// What a probe reports about a finished client handshake (blackbox_exporter's names).
pub struct HandshakeFacts {
    /// `TLS 1.2` / `TLS 1.3`, as Go spells them.
    pub version: &'static str,
    /// Go's name of the cipher suite.
    pub cipher: &'static str,
    /// The earliest `notAfter` of the certificates the server presented, in Unix seconds.
    pub earliest_expiry: Option<i64>,
}

/// Facts of the handshake `conn` completed.
pub fn handshake_facts(conn: &rustls::ClientConnection) -> HandshakeFacts {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2",
        _ => "unknown",
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|s| match s.suite() {
            // Go names the TLS 1.3 suites without rustls's "TLS13_" prefix.
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
            rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
            other => other.as_str().unwrap_or("unknown"),
        })
        .unwrap_or("unknown");
    let earliest_expiry = conn
        .peer_certificates()
        .unwrap_or(&[])
        .iter()
        .filter_map(|c| not_after(c.as_ref()))
        .min();
    HandshakeFacts {
        version,
        cipher,
        earliest_expiry,
    }
}

/// The `notAfter` of a DER X.509 certificate, in Unix seconds: Certificate → tbsCertificate →
/// (skip version, serialNumber, signature, issuer) → validity → notAfter (UTCTime or
/// GeneralizedTime). None for anything that does not parse.
pub fn not_after(der: &[u8]) -> Option<i64> {
    /// (tag, contents, rest) of the DER element at the start of `b`.
    fn element(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, b) = b.split_first()?;
        let (&first, mut b) = b.split_first()?;
        let len = if first < 0x80 {
            first as usize
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || b.len() < n {
                return None;
            }
            let len = b[..n].iter().fold(0usize, |a, &x| (a << 8) | x as usize);
            b = &b[n..];
            len
        };
        (b.len() >= len).then(|| (tag, &b[..len], &b[len..]))
    }
    let (_, cert, _) = element(der)?;
    let (_, mut tbs, _) = element(cert)?;
    let (tag, _, rest) = element(tbs)?;
    if tag == 0xa0 {
        tbs = rest; // explicit version
    }
    for _ in 0..3 {
        tbs = element(tbs)?.2; // serialNumber, signature, issuer
    }
    let (_, validity, _) = element(tbs)?;
    let after_not_before = element(validity)?.2;
    let (tag, t, _) = element(after_not_before)?;
    let t = std::str::from_utf8(t).ok()?;
    let (year, rest) = match tag {
        0x17 => {
            let yy: i64 = t.get(..2)?.parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, t.get(2..)?)
        }
        0x18 => (t.get(..4)?.parse().ok()?, t.get(4..)?),
        _ => return None,
    };
    let num = |r: std::ops::Range<usize>| -> Option<i64> { rest.get(r)?.parse().ok() };
    let (mo, d, h, mi, sec) = (num(0..2)?, num(2..4)?, num(4..6)?, num(6..8)?, num(8..10)?);
    if rest.get(10..11) != Some("Z") {
        return None;
    }
    Some(crate::log::days_from_civil(year, mo, d) * 86_400 + h * 3600 + mi * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_only_strips_ports_and_brackets() {
        assert_eq!(host_only("example.org:443"), "example.org");
        assert_eq!(host_only("127.0.0.1:9099"), "127.0.0.1");
        assert_eq!(host_only("[::1]:9099"), "::1");
        assert_eq!(host_only("example.org"), "example.org");
    }

    #[test]
    fn cipher_suites_are_checked_by_go_name() {
        assert!(provider(&["TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305".into()]).is_ok());
        let p = provider(&["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into()]).unwrap();
        // The TLS 1.3 suites plus the one named.
        assert_eq!(
            p.cipher_suites
                .iter()
                .filter(|s| s.tls13().is_none())
                .count(),
            1
        );
        let e = provider(&["TLS_RSA_WITH_RC4_128_SHA".into()]).unwrap_err();
        assert!(e.contains("unsupported cipher suite"), "{e}");
    }

    #[test]
    fn version_ranges_map_to_rustls_versions() {
        assert_eq!(versions(TlsVersion::Tls12, TlsVersion::Tls13).len(), 2);
        assert_eq!(
            versions(TlsVersion::Tls13, TlsVersion::Tls13),
            vec![&rustls::version::TLS13]
        );
    }

    #[test]
    fn missing_files_are_reported_by_path() {
        let cfg = TlsServerConfig {
            cert_file: "/nonexistent/a.crt".into(),
            key_file: "/nonexistent/a.key".into(),
            client_auth: ClientAuth::NoClientCert,
            client_ca_file: None,
            min_version: TlsVersion::Tls12,
            max_version: TlsVersion::Tls13,
            cipher_suites: Vec::new(),
        };
        let e = server_config(&cfg).unwrap_err();
        assert!(e.contains("/nonexistent/a.crt"), "{e}");
        let e = ClientTls::new(&ClientTlsConfig {
            ca_file: Some("/nonexistent/ca.crt".into()),
            ..ClientTlsConfig::default()
        })
        .unwrap_err();
        assert!(e.contains("/nonexistent/ca.crt"), "{e}");
    }
}

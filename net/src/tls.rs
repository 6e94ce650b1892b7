//! Client TLS on `secureClientPort`, with rustls.
//!
//! The configuration keys are Apache ZooKeeper's (`ssl.keyStore.location`,
//! `ssl.trustStore.location`, `ssl.clientAuth`, `ssl.enabledProtocols`, ...)
//! with one difference: where ZooKeeper accepts JKS, PKCS#12 or PEM stores,
//! corral takes PEM only, as ZooKeeper does with `ssl.keyStore.type=PEM`:
//!
//! - the key store is one PEM file holding the server's private key (PKCS#8,
//!   PKCS#1 or SEC1, unencrypted) and its certificate chain, leaf first;
//! - the trust store is a PEM file of CA certificates that client
//!   certificates must chain to.
//!
//! `ssl.clientAuth` is ZooKeeper's: `need` (the default) refuses a client
//! without a certificate signed by the trust store, `want` asks for one but
//! accepts a client without, `none` never asks. A verified client
//! certificate also authenticates the session as ZooKeeper's
//! X509AuthenticationProvider does: the id `x509:<subject DN>`, the subject
//! written as RFC 2253 (`CN=app,O=example`), so ACLs can name it.
//!
//! Only TLS 1.2 and 1.3 are offered.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

/// ZooKeeper's `ssl.clientAuth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Want,
    Need,
}

impl ClientAuth {
    pub fn parse(s: &str) -> Option<ClientAuth> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Some(ClientAuth::None),
            "want" => Some(ClientAuth::Want),
            "need" => Some(ClientAuth::Need),
            _ => None,
        }
    }
}

/// A TLS protocol version corral offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Tls12,
    Tls13,
}

impl Protocol {
    /// Java's names, as ZooKeeper's `ssl.protocol` and
    /// `ssl.enabledProtocols` use them.
    pub fn parse(s: &str) -> Option<Protocol> {
        match s.trim() {
            "TLSv1.2" => Some(Protocol::Tls12),
            "TLSv1.3" | "TLS" => Some(Protocol::Tls13),
            _ => None,
        }
    }
}

/// What zoo.cfg says about client TLS.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    /// PEM file: private key and certificate chain.
    pub key_store: PathBuf,
    /// PEM file of CA certificates for client certificates.
    pub trust_store: Option<PathBuf>,
    pub client_auth: ClientAuth,
    /// Offered versions; both unless `ssl.enabledProtocols` narrows them.
    pub protocols: Vec<Protocol>,
    /// ZooKeeper's `ssl.handshakeDetectionTimeoutMillis`: a client that has
    /// not finished its handshake by then is disconnected.
    pub handshake_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {why}")]
    File { path: PathBuf, why: String },
    #[error("{0}")]
    Config(String),
}

fn file_error(path: &Path, why: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        why: why.to_string(),
    }
}

fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| file_error(path, format!("cannot read: {e}")))
}

fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(path, format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(
            path,
            "no CERTIFICATE block (a PEM file is expected)",
        ));
    }
    Ok(certs)
}

fn private_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    if pem
        .windows(b"ENCRYPTED PRIVATE KEY".len())
        .any(|w| w == b"ENCRYPTED PRIVATE KEY")
    {
        return Err(file_error(
            path,
            "encrypted private keys are not supported; decrypt it (openssl pkcs8 -topk8 -nocrypt)",
        ));
    }
    rustls_pemfile::private_key(&mut &pem[..])
        .map_err(|e| file_error(path, format!("bad PEM: {e}")))?
        .ok_or_else(|| {
            file_error(
                path,
                "no PRIVATE KEY block (a PEM key store holds the key and the certificate chain)",
            )
        })
}

/// Builds the rustls server configuration; every problem with the files is
/// reported here, at startup (and by `--check-config`).
pub fn server_config(s: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let pem = read_pem(&s.key_store)?;
    let chain = certificates(&s.key_store, &pem)?;
    let key = private_key(&s.key_store, &pem)?;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = s
        .protocols
        .iter()
        .map(|p| match p {
            Protocol::Tls12 => &rustls::version::TLS12,
            Protocol::Tls13 => &rustls::version::TLS13,
        })
        .collect();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError::Config(format!("TLS versions: {e}")))?;
    let builder = match s.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Want | ClientAuth::Need => {
            let Some(trust) = &s.trust_store else {
                return Err(TlsError::Config(
                    "ssl.trustStore.location is required unless ssl.clientAuth=none".into(),
                ));
            };
            let pem = read_pem(trust)?;
            let mut roots = RootCertStore::empty();
            for cert in certificates(trust, &pem)? {
                roots
                    .add(cert)
                    .map_err(|e| file_error(trust, format!("not a usable CA certificate: {e}")))?;
            }
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if s.client_auth == ClientAuth::Want {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .map_err(|e| file_error(trust, format!("cannot verify clients with it: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(chain, key).map_err(|e| {
        file_error(
            &s.key_store,
            format!("key and certificate do not form a usable identity: {e}"),
        )
    })?;
    Ok(Arc::new(config))
}

/// The subject of a DER certificate as RFC 2253 (Java's
/// `X500Principal.getName()`, which ZooKeeper's x509 ids use): the RDNs in
/// reverse order, `,` between them, `+` inside a multi-valued RDN, known
/// attribute names and `OID=#hex` for the rest.
pub fn subject_rfc2253(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter() {
        let mut parts = Vec::new();
        for atv in rdn.iter() {
            let oid = atv.attr_type().to_id_string();
            let name = match oid.as_str() {
                "2.5.4.3" => Some("CN"),
                "2.5.4.6" => Some("C"),
                "2.5.4.7" => Some("L"),
                "2.5.4.8" => Some("ST"),
                "2.5.4.9" => Some("STREET"),
                "2.5.4.10" => Some("O"),
                "2.5.4.11" => Some("OU"),
                "0.9.2342.19200300.100.1.25" => Some("DC"),
                "0.9.2342.19200300.100.1.1" => Some("UID"),
                _ => None,
            };
            match (name, atv.as_str()) {
                (Some(name), Ok(value)) => parts.push(format!("{name}={}", escape_rfc2253(value))),
                _ => {
                    let hex: String = atv.as_slice().iter().map(|b| format!("{b:02x}")).collect();
                    parts.push(format!("{oid}=#{hex}"));
                }
            }
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

fn escape_rfc2253(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("corral-tls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn settings(key_store: PathBuf, trust: Option<PathBuf>, auth: ClientAuth) -> TlsSettings {
        TlsSettings {
            key_store,
            trust_store: trust,
            client_auth: auth,
            protocols: vec![Protocol::Tls12, Protocol::Tls13],
            handshake_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn builds_from_a_pem_key_store_and_names_bad_files() {
        let d = tempdir("cfg");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let store = write(
            &d,
            "server.pem",
            &format!("{}{}", key.serialize_pem(), cert.pem()),
        );
        let trust = write(&d, "ca.pem", &ca.pem());
        server_config(&settings(
            store.clone(),
            Some(trust.clone()),
            ClientAuth::Need,
        ))
        .unwrap();
        server_config(&settings(store.clone(), None, ClientAuth::None)).unwrap();

        // need without a trust store
        let e = server_config(&settings(store.clone(), None, ClientAuth::Want)).unwrap_err();
        assert!(e.to_string().contains("ssl.trustStore.location"), "{e}");
        // a key store without its key
        let only_cert = write(&d, "cert.pem", &cert.pem());
        let e = server_config(&settings(only_cert, None, ClientAuth::None)).unwrap_err();
        assert!(e.to_string().contains("PRIVATE KEY"), "{e}");
        // a missing file names the path
        let e = server_config(&settings(d.join("nope.pem"), None, ClientAuth::None)).unwrap_err();
        assert!(e.to_string().contains("nope.pem"), "{e}");
        // the key of another certificate
        let other = rcgen::KeyPair::generate().unwrap();
        let mismatched = write(
            &d,
            "mismatch.pem",
            &format!("{}{}", other.serialize_pem(), cert.pem()),
        );
        assert!(server_config(&settings(mismatched, None, ClientAuth::None)).is_err());
        // a JKS file is not PEM
        let jks = write(&d, "keystore.jks", "\u{fe}\u{ed}\u{fe}\u{ed}binary");
        let e = server_config(&settings(jks, None, ClientAuth::None)).unwrap_err();
        assert!(e.to_string().contains("PEM"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn subject_is_written_as_rfc2253() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "DE");
        dn.push(rcgen::DnType::OrganizationName, "Acme, Inc.");
        dn.push(rcgen::DnType::CommonName, "app-1");
        params.distinguished_name = dn;
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            subject_rfc2253(cert.der()).unwrap(),
            "CN=app-1,O=Acme\\, Inc.,C=DE"
        );
    }

    #[test]
    fn protocol_and_client_auth_names() {
        assert_eq!(Protocol::parse("TLSv1.2"), Some(Protocol::Tls12));
        assert_eq!(Protocol::parse("TLSv1.3"), Some(Protocol::Tls13));
        assert_eq!(Protocol::parse("TLSv1.1"), None);
        assert_eq!(ClientAuth::parse("NEED"), Some(ClientAuth::Need));
        assert_eq!(ClientAuth::parse("maybe"), None);
    }
}

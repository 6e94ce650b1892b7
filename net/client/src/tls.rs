//! TLS to a server's `secureClientPort` ↔ the Java client's
//! `ClientX509Util` with PEM stores: a trust store of CA certificates the
//! server's certificate must chain to (its name or address checked against
//! the host being connected to), and optionally a key store (private key
//! and certificate chain, one PEM file) for servers that want client
//! certificates.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;

/// A client TLS configuration, cheap to clone.
#[derive(Clone)]
pub struct Tls {
    config: Arc<ClientConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no CERTIFICATE block".into());
    }
    Ok(certs)
}

fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    rustls_pemfile::private_key(&mut &pem[..])
        .map_err(|e| format!("bad PEM: {e}"))?
        .ok_or_else(|| "no unencrypted PRIVATE KEY block".to_string())
}

impl Tls {
    /// `trust`: PEM CA certificates. `identity`: a PEM key store (key and
    /// certificate chain) to present when the server asks.
    pub fn from_pem(trust: &[u8], identity: Option<&[u8]>) -> Result<Tls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for cert in certificates(trust).map_err(|e| format!("trust store: {e}"))? {
            roots
                .add(cert)
                .map_err(|e| format!("trust store: not a usable CA certificate: {e}"))?;
        }
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some(pem) => {
                let chain = certificates(pem).map_err(|e| format!("key store: {e}"))?;
                let key = private_key(pem).map_err(|e| format!("key store: {e}"))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("key store: {e}"))?
            }
        };
        Ok(Tls {
            config: Arc::new(config),
        })
    }

    /// The TLS handshake over a connected socket to `host` (`name:port`).
    pub(crate) async fn connect(
        &self,
        host: &str,
        tcp: TcpStream,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let name = host
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(host)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = ServerName::try_from(name.to_string())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
    }
}

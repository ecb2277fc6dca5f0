//! `[tls]`: the server's certificate and key, and the client CA of mTLS.
//! Every failure names the file at fault.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

use super::ServerError;
use crate::config::TlsConfig;

/// The TLS acceptor for `[tls]`. The server terminates TLS itself (in
/// `exec::connections`) rather than through tonic, so that one deadline
/// from the accept bounds the TLS handshake and the HTTP/2 preface
/// together (`limits.handshake_timeout_ms`). Every failure names the
/// file(s) at fault.
pub(super) fn acceptor(tls: &TlsConfig) -> Result<TlsAcceptor, ServerError> {
    let (_, certs) = read_certificates(&tls.cert)?;
    let key = read_private_key(&tls.key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let setup_error = |message: String| ServerError::TlsSetup {
        cert: tls.cert.clone(),
        key: tls.key.clone(),
        message,
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| setup_error(error_chain(&e)))?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let (_, certs) = read_certificates(ca)?;
            let invalid = |message: String| ServerError::TlsInvalid {
                path: ca.clone(),
                message,
            };
            // Refuse a certificate that cannot be a trust anchor rather
            // than skip it, so a wrong file is not silently half-used.
            let mut roots = rustls::RootCertStore::empty();
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| invalid(format!("not usable as a client CA certificate: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| invalid(format!("not usable as a client CA: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| setup_error(error_chain(&e)))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read(path: &Path) -> Result<Vec<u8>, ServerError> {
    std::fs::read(path).map_err(|source| ServerError::TlsFile {
        path: path.to_owned(),
        source,
    })
}

/// Reads a PEM file that must hold at least one certificate; returns the
/// file's bytes and the certificates.
fn read_certificates(path: &Path) -> Result<(Vec<u8>, Vec<CertificateDer<'static>>), ServerError> {
    let pem = read(path)?;
    let invalid = |message: String| ServerError::TlsInvalid {
        path: path.to_owned(),
        message,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("not a valid PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(
            "no PEM certificate (-----BEGIN CERTIFICATE-----) in the file".into(),
        ));
    }
    Ok((pem, certs))
}

/// Reads a PEM file that must hold a private key (PKCS#8, PKCS#1 or SEC1).
fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, ServerError> {
    let pem = read(path)?;
    // The parse error is only a kind ("no items found", "malformed"): it
    // never echoes key material.
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| ServerError::TlsInvalid {
        path: path.to_owned(),
        message: format!("no PEM private key (PKCS#8, PKCS#1 or SEC1) in the file: {e}"),
    })
}

/// The causes of an error, outermost first, joined for one log line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

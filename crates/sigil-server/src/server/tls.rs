//! `[tls]`: the server's certificate and key, and the client CA of mTLS.
//! Every failure names the file at fault.

use std::path::Path;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use super::ServerError;
use crate::config::TlsConfig;

/// How long a client may take to complete the TLS handshake. Without a
/// limit, a connection that never sends its ClientHello holds a socket and a
/// task for as long as the peer keeps it open.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Applies `[tls]` to the server builder. Every failure names the file(s)
/// at fault: tonic's own error says only "transport error".
pub(super) fn apply(builder: Server, tls: &TlsConfig) -> Result<Server, ServerError> {
    let (cert_pem, _) = read_certificates(&tls.cert)?;
    let identity = Identity::from_pem(cert_pem, read_private_key(&tls.key)?);
    let mut t = ServerTlsConfig::new()
        .identity(identity)
        .timeout(TLS_HANDSHAKE_TIMEOUT);
    if let Some(ca) = &tls.client_ca {
        let (pem, certs) = read_certificates(ca)?;
        // tonic skips certificates it cannot use as trust anchors; refuse
        // them instead, so a wrong file is not silently half-used.
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs {
            roots.add(cert).map_err(|e| ServerError::TlsInvalid {
                path: ca.clone(),
                message: format!("not usable as a client CA certificate: {e}"),
            })?;
        }
        t = t.client_ca_root(Certificate::from_pem(pem));
    }
    builder.tls_config(t).map_err(|e| ServerError::TlsSetup {
        cert: tls.cert.clone(),
        key: tls.key.clone(),
        message: error_chain(&e),
    })
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
fn read_private_key(path: &Path) -> Result<Vec<u8>, ServerError> {
    let pem = read(path)?;
    // The parse error is only a kind ("no items found", "malformed"): it
    // never echoes key material.
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| ServerError::TlsInvalid {
        path: path.to_owned(),
        message: format!("no PEM private key (PKCS#8, PKCS#1 or SEC1) in the file: {e}"),
    })?;
    Ok(pem)
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

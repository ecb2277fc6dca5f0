//! TLS and mTLS end to end: the real server on loopback (ephemeral port)
//! with a throw-away PKI generated at test time (rcgen): a CA, a server
//! certificate for 127.0.0.1/localhost, a client certificate from the same
//! CA and one from an unrelated CA. Keys live only in the test's temp dir.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use sigil_core::{SignOptions, Signer};
use sigil_index::{EntryMeta, IndexWriter, SegmentBuilder};
use sigil_server::auth::{key_digest_hex, Role};
use sigil_server::config::{ApiKeyConfig, TlsConfig};
use sigil_server::proto::matcher_client::MatcherClient;
use sigil_server::proto::{self, Verdict};
use sigil_server::{RunOptions, RunningServer, ServerConfig};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request};

use crate::support::hostile;

const MATCHER_KEY: &str = "tls-test-matcher-token";
const KNOWN: &str = "originals/bridge-mods/square-256x256.jpg";

fn read_testdata(rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// Guards against a hang (a broken handshake that never resolves) so the
/// test fails instead of blocking the run. The cap is far above any normal
/// duration: it is not a timing assertion.
async fn no_hang<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no outcome after 120 s"))
}

/// A certificate authority that can sign leaf certificates.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf certificate and its key (PEM).
    fn leaf(&self, cn: &str, sans: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// The PKI of one test: PEM strings, and the server's files in the temp dir.
struct Pki {
    ca_pem: String,
    client: (String, String),
    rogue_ca_pem: String,
    rogue_client: (String, String),
    server_cert: PathBuf,
    server_key: PathBuf,
    ca_file: PathBuf,
}

fn make_pki(dir: &Path) -> Pki {
    let ca = Ca::new("sigil test CA");
    let rogue = Ca::new("unrelated CA");
    let server = ca.leaf(
        "sigil test server",
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let client = ca.leaf("pipeline client", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let rogue_client = rogue.leaf("pipeline client", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let pki = Pki {
        ca_pem: ca.pem.clone(),
        client,
        rogue_ca_pem: rogue.pem.clone(),
        rogue_client,
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
        ca_file: dir.join("ca.crt"),
    };
    std::fs::write(&pki.server_cert, &server.0).unwrap();
    std::fs::write(&pki.server_key, &server.1).unwrap();
    std::fs::write(&pki.ca_file, &pki.ca_pem).unwrap();
    pki
}

struct Fixture {
    /// Holds the index, database and key files until the test ends.
    _dir: tempfile::TempDir,
    pki: Pki,
    server: Option<RunningServer>,
}

impl Fixture {
    fn addr(&self) -> SocketAddr {
        self.server.as_ref().unwrap().addr
    }

    async fn stop(mut self) {
        let s = self.server.take().unwrap();
        s.shutdown();
        s.wait().await.unwrap();
    }
}

fn base_config(dir: &Path) -> ServerConfig {
    let index = dir.join("index");
    let known = Signer::new(SignOptions::default()).sign(&read_testdata(KNOWN));
    let mut w = IndexWriter::create(&index).unwrap();
    let mut b = SegmentBuilder::new();
    b.push_pdq(
        &known.image.as_ref().unwrap().pdq.0,
        EntryMeta {
            id: "bridge-1",
            list: "ncmec",
            category: "A1",
            note: None,
        },
    )
    .unwrap();
    w.add_segment(b).unwrap();
    drop(w);
    let mut config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: None,
        index: Some(index),
        reporting_organisation: "Example T&S".into(),
        reporting_email: "ts@example.invalid".into(),
        ..ServerConfig::default()
    };
    config.reports.path = dir.join("reports.db");
    config.reload.poll_interval_ms = 0;
    config.limits.hashing_workers = 1;
    config.api_keys = vec![ApiKeyConfig {
        name: "pipeline".into(),
        sha256: key_digest_hex(MATCHER_KEY),
        role: Role::Matcher,
        rate_limit_per_s: 100_000.0,
        burst: None,
    }];
    config
}

/// Starts a TLS server; `mtls` also sets `client_ca`.
async fn start_tls(mtls: bool, tweak: impl FnOnce(&mut ServerConfig)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let mut config = base_config(dir.path());
    config.tls = Some(TlsConfig {
        cert: pki.server_cert.clone(),
        key: pki.server_key.clone(),
        client_ca: mtls.then(|| pki.ca_file.clone()),
    });
    tweak(&mut config);
    let server = sigil_server::start(config, RunOptions::default())
        .await
        .unwrap();
    Fixture {
        _dir: dir,
        pki,
        server: Some(server),
    }
}

/// How a client connects.
#[derive(Default)]
struct ClientSpec<'a> {
    /// The CA the client trusts (none: it trusts nothing).
    trust: Option<&'a str>,
    /// The client's own certificate and key.
    identity: Option<&'a (String, String)>,
    /// The name to verify the server certificate against (default: the IP
    /// in the URL, checked against the certificate's IP SAN).
    domain: Option<&'a str>,
}

async fn tls_channel(addr: SocketAddr, spec: &ClientSpec<'_>) -> Result<Channel, String> {
    let mut tls = ClientTlsConfig::new();
    if let Some(ca) = spec.trust {
        tls = tls.ca_certificate(Certificate::from_pem(ca));
    }
    if let Some((cert, key)) = spec.identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    if let Some(d) = spec.domain {
        tls = tls.domain_name(d);
    }
    let endpoint = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .map_err(|e| format!("tls config: {e:?}"))?;
    no_hang("TLS connect", endpoint.connect())
        .await
        .map_err(|e| format!("connect: {e:?}"))
}

fn authed<T>(msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {MATCHER_KEY}").parse().unwrap(),
    );
    r
}

/// Connects and asks for IndexInfo; the error (as text) if either fails.
async fn index_info(channel: Result<Channel, String>) -> Result<proto::IndexInfoResponse, String> {
    let mut m = MatcherClient::new(channel?);
    no_hang(
        "IndexInfo",
        m.index_info(authed(proto::IndexInfoRequest {})),
    )
    .await
    .map(|r| r.into_inner())
    .map_err(|s| format!("call: {s:?}"))
}

async fn served(addr: SocketAddr, spec: &ClientSpec<'_>) -> proto::IndexInfoResponse {
    index_info(tls_channel(addr, spec).await)
        .await
        .unwrap_or_else(|e| panic!("a client that should be served was refused: {e}"))
}

async fn refused(addr: SocketAddr, spec: &ClientSpec<'_>, what: &str) -> String {
    match index_info(tls_channel(addr, spec).await).await {
        Ok(info) => panic!("{what}: served, expected a refusal ({info:?})"),
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_trusting_the_ca_is_served_and_plaintext_is_refused() {
    let fx = start_tls(false, |_| {}).await;
    let addr = fx.addr();
    let ca = fx.pki.ca_pem.as_str();

    // Verified against the IP SAN, then against the DNS SAN.
    let info = served(
        addr,
        &ClientSpec {
            trust: Some(ca),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(info.pdq_entries, 1, "{info:?}");
    served(
        addr,
        &ClientSpec {
            trust: Some(ca),
            domain: Some("localhost"),
            ..Default::default()
        },
    )
    .await;

    // A real call with an image over TLS.
    let channel = tls_channel(
        addr,
        &ClientSpec {
            trust: Some(ca),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut m = MatcherClient::new(channel.clone());
    let res = m
        .match_image(authed(proto::MatchImageRequest {
            image: read_testdata(KNOWN).into(),
            request_id: "tls-1".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.verdict(), Verdict::Match, "{res:?}");
    assert!(!res.report_id.is_empty());

    // TLS does not replace the API key.
    let err = no_hang(
        "IndexInfo without a key",
        MatcherClient::new(channel).index_info(proto::IndexInfoRequest {}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

    // Plaintext HTTP/2 against the TLS port gets nothing.
    let plain = async {
        let ch = no_hang(
            "plaintext connect",
            Endpoint::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect(),
        )
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
        Ok::<_, String>(ch)
    }
    .await;
    let err = match index_info(plain).await {
        Ok(info) => panic!("plaintext client was served: {info:?}"),
        Err(e) => e,
    };
    assert!(!err.is_empty());

    // A client that does not trust the server's CA refuses the server, and
    // one that trusts nothing too.
    refused(
        addr,
        &ClientSpec {
            trust: Some(&fx.pki.rogue_ca_pem),
            ..Default::default()
        },
        "client trusting another CA",
    )
    .await;
    refused(addr, &ClientSpec::default(), "client trusting no CA").await;
    // A name the certificate does not carry.
    refused(
        addr,
        &ClientSpec {
            trust: Some(ca),
            domain: Some("sigil.example.invalid"),
            ..Default::default()
        },
        "client expecting another server name",
    )
    .await;

    // Failed handshakes did not disturb the listener.
    served(
        addr,
        &ClientSpec {
            trust: Some(ca),
            ..Default::default()
        },
    )
    .await;
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_serves_only_clients_with_a_certificate_from_the_configured_ca() {
    let fx = start_tls(true, |_| {}).await;
    let addr = fx.addr();
    let ca = fx.pki.ca_pem.as_str();

    let e = refused(
        addr,
        &ClientSpec {
            trust: Some(ca),
            ..Default::default()
        },
        "client without a certificate",
    )
    .await;
    eprintln!("no client certificate: {e}");
    let e = refused(
        addr,
        &ClientSpec {
            trust: Some(ca),
            identity: Some(&fx.pki.rogue_client),
            ..Default::default()
        },
        "client certificate from another CA",
    )
    .await;
    eprintln!("client certificate from another CA: {e}");

    let info = served(
        addr,
        &ClientSpec {
            trust: Some(ca),
            identity: Some(&fx.pki.client),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(info.pdq_entries, 1, "{info:?}");

    // Plaintext gets nothing here either.
    let plain = no_hang(
        "plaintext connect",
        Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect(),
    )
    .await
    .map_err(|e| format!("connect: {e:?}"));
    assert!(
        index_info(plain).await.is_err(),
        "plaintext client was served"
    );

    // Still serving the right client after the refusals.
    served(
        addr,
        &ClientSpec {
            trust: Some(ca),
            identity: Some(&fx.pki.client),
            domain: Some("localhost"),
        },
    )
    .await;
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handshake_is_dropped_while_others_are_served() {
    use tokio::io::AsyncReadExt;
    let fx = start_tls(true, |_| {}).await;
    let addr = fx.addr();
    // Connects and never sends a ClientHello.
    let mut stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
    served(
        addr,
        &ClientSpec {
            trust: Some(&fx.pki.ca_pem),
            identity: Some(&fx.pki.client),
            ..Default::default()
        },
    )
    .await;
    // The server gives up on it (handshake timeout) and closes it; before
    // the fix it was held for as long as the peer kept it open.
    let mut buf = [0u8; 64];
    let outcome = no_hang("stalled handshake", stalled.read(&mut buf)).await;
    assert!(
        matches!(outcome, Ok(0) | Err(_)),
        "expected the server to close the connection: {outcome:?}"
    );
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_health_listener_serves_health_only_beside_tls() {
    let fx = start_tls(true, |c| {
        c.health_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let health_addr = fx.server.as_ref().unwrap().health_addr.unwrap();
    let ch = no_hang(
        "health connect",
        Endpoint::from_shared(format!("http://{health_addr}"))
            .unwrap()
            .connect(),
    )
    .await
    .unwrap();
    let mut h = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    let st = h
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        st.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    // The plaintext port is not a way around TLS and mTLS.
    let err = MatcherClient::new(ch)
        .index_info(authed(proto::IndexInfoRequest {}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_tls_files_stop_start_up_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let garbage = dir.path().join("not-pem.txt");
    std::fs::write(&garbage, "this is not PEM\n").unwrap();
    let missing = dir.path().join("missing.key");
    // A key that parses but belongs to another certificate.
    let other_key = dir.path().join("client.key");
    std::fs::write(&other_key, &pki.client.1).unwrap();

    let cases: Vec<(&str, TlsConfig, &Path)> = vec![
        (
            "missing key file",
            TlsConfig {
                cert: pki.server_cert.clone(),
                key: missing.clone(),
                client_ca: None,
            },
            &missing,
        ),
        (
            "key file without a key",
            TlsConfig {
                cert: pki.server_cert.clone(),
                key: garbage.clone(),
                client_ca: None,
            },
            &garbage,
        ),
        (
            "cert file without a certificate",
            TlsConfig {
                cert: garbage.clone(),
                key: pki.server_key.clone(),
                client_ca: None,
            },
            &garbage,
        ),
        (
            "client CA file without a certificate",
            TlsConfig {
                cert: pki.server_cert.clone(),
                key: pki.server_key.clone(),
                client_ca: Some(garbage.clone()),
            },
            &garbage,
        ),
        (
            "key of another certificate",
            TlsConfig {
                cert: pki.server_cert.clone(),
                key: other_key.clone(),
                client_ca: None,
            },
            &other_key,
        ),
    ];
    for (what, tls, named) in cases {
        let case_dir = tempfile::tempdir().unwrap();
        let mut config = base_config(case_dir.path());
        config.tls = Some(tls);
        let err = match sigil_server::start(config, RunOptions::default()).await {
            Ok(s) => {
                s.shutdown();
                let _ = s.wait().await;
                panic!("{what}: the server started");
            }
            Err(e) => e,
        };
        let text = err.to_string();
        eprintln!("{what}: {text}");
        assert!(
            text.contains(&named.display().to_string()),
            "{what}: the error does not name {}: {text}",
            named.display()
        );
    }
}

/// A TLS client trusting the test CA, speaking nothing after the handshake.
fn raw_tls_client(ca_pem: &str) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
}

/// Issue 21.2 with TLS: a socket that never starts the TLS handshake, one
/// that finishes it and then sends no HTTP/2 preface, and one that sends
/// half a preface over TLS are each closed once `handshake_timeout_ms`
/// has passed (one deadline from the accept), counted; a legitimate TLS
/// client is served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_connections_that_never_finish_the_handshake_are_closed() {
    use tokio::io::AsyncWriteExt;
    let fx = start_tls(false, |c| c.limits.handshake_timeout_ms = 500).await;
    let addr = fx.addr();
    let mut no_hello = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connector = raw_tls_client(&fx.pki.ca_pem);
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut silent_tls = connector
        .connect(
            name.clone(),
            tokio::net::TcpStream::connect(addr).await.unwrap(),
        )
        .await
        .expect("the TLS handshake itself succeeds");
    let mut half_preface = connector
        .connect(name, tokio::net::TcpStream::connect(addr).await.unwrap())
        .await
        .unwrap();
    half_preface
        .write_all(&hostile::PREFACE[..10])
        .await
        .unwrap();
    let info = served(
        addr,
        &ClientSpec {
            trust: Some(&fx.pki.ca_pem),
            ..Default::default()
        },
    )
    .await;
    assert!(info.entries > 0);
    hostile::closed_by_server("no ClientHello", &mut no_hello).await;
    hostile::closed_by_server("TLS then silence", &mut silent_tls).await;
    hostile::closed_by_server("TLS then half a preface", &mut half_preface).await;
    let text = fx.server.as_ref().unwrap().metrics_text();
    assert_eq!(
        hostile::metric(
            &text,
            r#"sigil_connections_closed_total{listener="grpc",reason="handshake_timeout"}"#
        ),
        3.0,
        "{text}"
    );
    fx.stop().await;
}

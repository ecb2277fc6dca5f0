//! Fuzz request handling of the gRPC Matcher: the input is a protobuf
//! `MatchHashesRequest` or `MatchImageRequest` (first byte picks), decoded
//! with prost exactly as tonic would, and sent to a real server running in
//! this process on loopback (insecure-loopback mode, a small index).
//!
//! Invariants: every request gets an answer (a response or a gRPC status,
//! never a dropped connection or a hang), and the server keeps serving: an
//! `IndexInfo` call after each request succeeds.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use sigil_core::HashKind;
use sigil_index::{EntryMeta, IndexWriter, SegmentBuilder};
use sigil_server::proto::matcher_client::MatcherClient;
use sigil_server::proto::{IndexInfoRequest, MatchHashesRequest, MatchImageRequest};
use sigil_server::{RunOptions, ServerConfig};
use tonic::transport::Channel;

struct Harness {
    rt: tokio::runtime::Runtime,
    client: MatcherClient<Channel>,
    // Kept alive for the whole run: the index and the report database.
    _dir: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let index = dir.path().join("index");
        let mut w = IndexWriter::create(&index).expect("index");
        let mut b = SegmentBuilder::new();
        for i in 0..64u8 {
            let id = format!("e{i}");
            let meta = EntryMeta {
                id: &id,
                list: "fuzz",
                category: "A1",
                note: None,
            };
            b.push_pdq(&[i; 32], meta).expect("pdq");
            b.push(HashKind::Md5, &[i; 16], meta).expect("md5");
        }
        w.add_segment(b).expect("segment");
        drop(w);
        let mut config = ServerConfig::default();
        config.index = Some(index);
        config.listen = "127.0.0.1:0".parse().expect("addr");
        config.metrics_listen = None;
        config.reports.path = dir.path().join("reports.db");
        config.insecure_loopback = true;
        config.limits.max_message_bytes = 1 << 20;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let client = rt.block_on(async {
            let server = sigil_server::start(config, RunOptions::default())
                .await
                .expect("server starts");
            let addr = server.addr;
            // The server runs until the fuzzing process exits.
            std::mem::forget(server);
            MatcherClient::connect(format!("http://{addr}"))
                .await
                .expect("connect")
        });
        Harness {
            rt,
            client,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let h = harness();
    let mut client = h.client.clone();
    h.rt.block_on(async {
        let timeout = std::time::Duration::from_secs(10);
        let answered = if mode & 1 == 0 {
            let Ok(req) = MatchHashesRequest::decode(body) else {
                return;
            };
            tokio::time::timeout(timeout, client.match_hashes(req))
                .await
                .map(|r| r.map(|_| ()))
        } else {
            let Ok(req) = MatchImageRequest::decode(body) else {
                return;
            };
            tokio::time::timeout(timeout, client.match_image(req))
                .await
                .map(|r| r.map(|_| ()))
        };
        match answered {
            Err(_) => panic!("request not answered within {timeout:?}"),
            Ok(Err(status)) => assert!(
                !matches!(status.code(), tonic::Code::Unknown | tonic::Code::Internal),
                "request handling failed internally: {status:?}"
            ),
            Ok(Ok(())) => {}
        }
        client
            .index_info(IndexInfoRequest {})
            .await
            .expect("server still serving after the request");
    });
});

//! `sigil-bench-server`: a load generator for the gRPC service (kept out of
//! the production binary; the server benchmarks in `benches/peers/` run it).
//!
//! Closed loop (default): `--concurrency` callers send back to back for
//! `--seconds`; reports throughput and latency percentiles. Open loop
//! (`--rate R`): calls start at a fixed rate whatever the latency, which is
//! how "p99 at 80% of peak" is measured. Prints one JSON line; exits 1 when
//! any call failed, 2 on a usage or connection error.
//!
//! Every call sets `MatchOptions.check_only`: a load test matches without
//! writing report stubs, so it never fills a real review queue.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use sigil_server::proto::matcher_client::MatcherClient;
use sigil_server::proto::{self, HashKind as PKind};
use tonic::transport::Channel;

/// The options of every call: match, write no report stub.
fn check_only() -> proto::MatchOptions {
    proto::MatchOptions {
        check_only: Some(true),
        ..Default::default()
    }
}

/// The message of a call the open-loop generator skipped because `--concurrency`
/// calls were already in flight (reported as `ClientInFlightCap`).
const CLIENT_CAP: &str = "client in-flight cap";

/// Load-test a running `sigil serve` (throughput and latency percentiles).
///
/// Every call is sent with `MatchOptions.check_only` set: matches are
/// answered but no report stub is written, so a load test never fills the
/// server's review queue (and the store's write time is not measured).
#[derive(clap::Parser)]
#[command(name = "sigil-bench-server")]
struct Args {
    /// Server address (host:port).
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: String,
    /// API key (default: the SIGIL_TOKEN environment variable).
    #[arg(long)]
    token: Option<String>,
    /// What to send.
    #[arg(long, value_enum, default_value_t = Mode::Hashes)]
    mode: Mode,
    /// Image files or directories (mode image); files are read into memory first.
    #[arg(long = "images", num_args = 1..)]
    images: Vec<PathBuf>,
    /// Hashes per MatchHashes call (mode hashes).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Kind of the random hashes (mode hashes): PDQ hashes are range
    /// searched, exact digests looked up.
    #[arg(long, value_enum, default_value_t = QueryKind::Pdq)]
    kind: QueryKind,
    /// Concurrent callers (closed loop) or the cap on calls in flight (open loop).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Fixed call rate per second (open loop); unset: closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Measurement length.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Warm-up before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum QueryKind {
    Pdq,
    Md5,
    Sha1,
    Sha256,
}

impl QueryKind {
    /// The proto kind and the digest length in bytes.
    fn proto(self) -> (PKind, usize) {
        match self {
            QueryKind::Pdq => (PKind::Pdq, 32),
            QueryKind::Md5 => (PKind::Md5, 16),
            QueryKind::Sha1 => (PKind::Sha1, 20),
            QueryKind::Sha256 => (PKind::Sha256, 32),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    Hashes,
    Image,
}

struct Load {
    mode: Mode,
    token: Option<String>,
    images: Vec<Vec<u8>>,
    batch: usize,
    kind: QueryKind,
}

impl Load {
    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        if let Some(t) = &self.token {
            if let Ok(v) = format!("Bearer {t}").parse() {
                r.metadata_mut().insert("authorization", v);
            }
        }
        r
    }

    /// One call; returns the number of items (hashes or images) it carried.
    async fn call(
        &self,
        client: &mut MatcherClient<Channel>,
        seq: u64,
        rng: &mut u64,
    ) -> Result<usize, tonic::Status> {
        match self.mode {
            Mode::Hashes => {
                let (kind, len) = self.kind.proto();
                let hashes = (0..self.batch)
                    .map(|i| {
                        let mut h = [0u8; 32];
                        for chunk in h.chunks_mut(8) {
                            chunk.copy_from_slice(&xorshift(rng).to_le_bytes());
                        }
                        proto::HashQuery {
                            id: i.to_string(),
                            kind: kind as i32,
                            hex: sigil_core::hash::encode_hex(&h[..len]),
                            ..Default::default()
                        }
                    })
                    .collect();
                let req = proto::MatchHashesRequest {
                    hashes,
                    options: Some(check_only()),
                    ..Default::default()
                };
                client.match_hashes(self.request(req)).await?;
                Ok(self.batch)
            }
            Mode::Image => {
                let img = &self.images[(seq as usize) % self.images.len()];
                let req = proto::MatchImageRequest {
                    // A copy per call, like a client reading each upload.
                    image: img.clone().into(),
                    request_id: seq.to_string(),
                    options: Some(check_only()),
                    ..Default::default()
                };
                client.match_image(self.request(req)).await?;
                Ok(1)
            }
        }
    }
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn collect_images(paths: &[PathBuf]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading directory {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(p.clone());
        }
    }
    files
        .iter()
        .map(|f| std::fs::read(f).with_context(|| format!("reading {}", f.display())))
        .collect()
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    items: u64,
    errors: std::collections::BTreeMap<String, u64>,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sigil-bench-server: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    let images = if args.mode == Mode::Image {
        let v = collect_images(&args.images)?;
        anyhow::ensure!(!v.is_empty(), "--mode image needs --images FILE|DIR...");
        v
    } else {
        Vec::new()
    };
    anyhow::ensure!(
        args.concurrency > 0 && args.batch > 0,
        "concurrency and batch must be > 0"
    );
    let load = Arc::new(Load {
        mode: args.mode,
        token: args
            .token
            .clone()
            .or_else(|| std::env::var("SIGIL_TOKEN").ok()),
        images,
        batch: args.batch,
        kind: args.kind,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let channel = Channel::from_shared(format!("http://{}", args.addr))
            .context("bad --addr")?
            .connect()
            .await
            .with_context(|| format!("connecting to {}", args.addr))?;
        let client = MatcherClient::new(channel)
            .max_encoding_message_size(64 << 20)
            .max_decoding_message_size(64 << 20);
        let warm_end = Instant::now() + Duration::from_secs_f64(args.warmup);
        let end = warm_end + Duration::from_secs_f64(args.seconds);
        let tally = Arc::new(std::sync::Mutex::new(Tally::default()));
        let seq = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let record = {
            let tally = tally.clone();
            move |start: Instant, r: Result<usize, tonic::Status>| {
                if start < warm_end || start >= end {
                    return;
                }
                let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
                match r {
                    Ok(n) => {
                        t.latencies_us.push(start.elapsed().as_micros() as u64);
                        t.items += n as u64;
                    }
                    Err(s) => {
                        // Calls the generator itself skipped are not the
                        // server's refusals: keep the two apart.
                        let key = if s.message() == CLIENT_CAP {
                            "ClientInFlightCap".to_string()
                        } else {
                            format!("{:?}", s.code())
                        };
                        *t.errors.entry(key).or_insert(0) += 1
                    }
                }
            }
        };
        let mut tasks = Vec::new();
        match args.rate {
            None => {
                for w in 0..args.concurrency {
                    let (load, mut client, seq, record) =
                        (load.clone(), client.clone(), seq.clone(), record.clone());
                    tasks.push(tokio::spawn(async move {
                        let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (w as u64 + 1);
                        while Instant::now() < end {
                            let s = seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let start = Instant::now();
                            let r = load.call(&mut client, s, &mut rng).await;
                            record(start, r);
                        }
                    }));
                }
            }
            Some(rate) => {
                anyhow::ensure!(rate > 0.0, "--rate must be positive");
                let sem = Arc::new(tokio::sync::Semaphore::new(args.concurrency));
                let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                let mut n = 0u64;
                while Instant::now() < end {
                    ticker.tick().await;
                    n += 1;
                    let start = Instant::now();
                    let Ok(permit) = sem.clone().try_acquire_owned() else {
                        // Over the in-flight cap: the server is not keeping up.
                        record(start, Err(tonic::Status::resource_exhausted(CLIENT_CAP)));
                        continue;
                    };
                    let (load, mut client, record) = (load.clone(), client.clone(), record.clone());
                    tasks.push(tokio::spawn(async move {
                        let mut rng = 0x2545_F491_4F6C_DD1Du64 ^ n;
                        let r = load.call(&mut client, n, &mut rng).await;
                        record(start, r);
                        drop(permit);
                    }));
                }
            }
        }
        for t in tasks {
            let _ = t.await;
        }
        let mut t = std::mem::take(&mut *tally.lock().unwrap_or_else(|p| p.into_inner()));
        t.latencies_us.sort_unstable();
        let calls = t.latencies_us.len();
        let summary = serde_json::json!({
            "mode": match args.mode { Mode::Hashes => "hashes", Mode::Image => "image" },
            "concurrency": args.concurrency,
            "rate": args.rate,
            "batch": if args.mode == Mode::Hashes { Some(args.batch) } else { None },
            "kind": if args.mode == Mode::Hashes {
                Some(args.kind.proto().0.as_str_name())
            } else {
                None
            },
            "seconds": args.seconds,
            "calls": calls,
            "calls_per_s": calls as f64 / args.seconds,
            "items_per_s": t.items as f64 / args.seconds,
            "latency_ms": {
                "p50": percentile(&t.latencies_us, 0.50),
                "p90": percentile(&t.latencies_us, 0.90),
                "p99": percentile(&t.latencies_us, 0.99),
                "max": percentile(&t.latencies_us, 1.0),
            },
            "errors": t.errors,
        });
        println!("{summary}");
        Ok(if t.errors.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}

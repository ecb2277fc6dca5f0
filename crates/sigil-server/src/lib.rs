//! sigil-server: the gRPC matching service.
//!
//! Content pipelines call [`proto::matcher_server::Matcher`] on every upload
//! (or send hashes they computed themselves); a match creates a report stub,
//! committed to the [`sigil_reports::ReportStore`] before the caller hears of it,
//! that reviewers complete through [`proto::reports_server::Reports`].
//! Image bytes stop at the hashing step: they are hashed in memory by a
//! bounded worker pool and dropped, never stored or logged.
//!
//! Entry point: [`server::start`] with a [`config::ServerConfig`]. The
//! parts, by job: `grpc` (the two services and every proto/domain
//! conversion), `exec` (the bounded executors: hashing pool, lookup queue,
//! store calls, connection cap), [`server`] (start-up, listeners,
//! background tasks), `console` (the reviewer console: server-rendered
//! pages over the report store, its own listener), [`config`], [`auth`],
//! [`metrics`]. The matching
//! rule is `sigil_match`'s: the `[matching]` section is its `MatchPolicy`,
//! and every verdict comes from its `Matcher`.

pub mod auth;
pub mod config;
mod console;
mod exec;
mod grpc;
pub mod metrics;
pub mod server;
mod untrusted;

/// Generated protobuf and tonic code for package `sigil.v1`: public for
/// clients (tests, the load generator); no other library crate uses it.
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("sigil.v1");

    /// Encoded `FileDescriptorSet` of the sigil protos, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/sigil_descriptor.bin"));
}

pub use config::ServerConfig;
pub use server::{start, RunOptions, RunningServer, ServerError};

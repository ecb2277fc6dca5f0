//! sigil-server: the gRPC matching service.
//!
//! Content pipelines call [`proto::matcher_server::Matcher`] on every upload
//! (or send hashes they computed themselves); a match creates a report stub,
//! committed to the [`store::ReportStore`] before the caller hears of it,
//! that reviewers complete through [`proto::reports_server::Reports`].
//! Image bytes stop at the hashing step: they are hashed in memory by a
//! bounded worker pool and dropped, never stored or logged.
//!
//! Entry point: [`server::start`] with a [`config::ServerConfig`].

pub mod auth;
pub mod config;
mod exec;
pub mod matching;
pub mod metrics;
pub mod server;
pub mod service;
pub mod store;
pub mod timeutil;

/// Generated protobuf and tonic code for package `sigil.v1`.
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("sigil.v1");

    /// Encoded `FileDescriptorSet` of the sigil protos, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/sigil_descriptor.bin"));
}

pub use config::ServerConfig;
pub use server::{start, RunOptions, RunningServer, ServerError};

//! Compiles proto/sigil/v1/*.proto with protox (pure Rust, so no system
//! `protoc` is needed) and generates the tonic server and client code, plus
//! the encoded descriptor set that the reflection service serves.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto");
    let files = [
        "sigil/v1/common.proto",
        "sigil/v1/matcher.proto",
        "sigil/v1/reports.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={}", proto_root.join(f).display());
    }
    let fds = protox::compile(files, [&proto_root])?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("sigil_descriptor.bin");
    std::fs::write(&descriptor_path, prost::Message::encode_to_vec(&fds))?;

    tonic_prost_build::configure()
        // The image arrives as a slice of the receive buffer instead of a
        // copy of it (prost's default `Vec<u8>` copies every upload once).
        .bytes(".sigil.v1.MatchImageRequest.image")
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}

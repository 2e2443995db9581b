//! Compiles `proto/drift.proto` into the gRPC server and client (pure Rust: protox parses the
//! file, so no `protoc` is needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/drift.proto");
    let fds = protox::compile(["proto/drift.proto"], ["proto"])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}

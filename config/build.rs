//! Generates the discovery API's Rust types from `proto/discovery.proto` with `protox`
//! (a pure-Rust protobuf compiler), so building needs no system `protoc`. Only with the
//! `discovery` feature (the proxy and the control plane turn it on).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/discovery.proto");
    #[cfg(feature = "discovery")]
    {
        let descriptors = protox::compile(["proto/discovery.proto"], ["proto"])?;
        tonic_prost_build::configure()
            .build_transport(false)
            .compile_fds(descriptors)?;
    }
    Ok(())
}

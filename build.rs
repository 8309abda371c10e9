//! Compiles podstart's own API (proto/podstart/v1) into Rust, with a file
//! descriptor set for gRPC reflection. CRI bindings come from the k8s-cri
//! crate, containerd's own services from the containerd-client crate.
use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("podstart_v1_descriptor.bin"))
        // Its Debug is written by hand (src/lib.rs): it must not print secrets.
        .skip_debug(["podstart.v1.RegistryCredential"])
        .compile_protos(&["proto/podstart/v1/podstart.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}

//! Pod manifests (YAML or JSON text) → `podstart::cli::manifest::parse_manifest`.
//!
//! Oracle: nothing panics; a manifest that converts yields a request that
//! request validation judges without panicking either (the CLI sends it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use podstart::cli::manifest::parse_manifest;
use podstart::spec::validate::validate_start_pod;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(manifest) = parse_manifest(text) {
        let _ = validate_start_pod(&manifest.request);
    }
});

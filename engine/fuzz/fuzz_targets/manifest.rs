//! Any bytes as a manifest or tombstone file: parsed and checked, or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

use drift_engine::storage::manifest::{decode_tombstones, Manifest};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::decode(data) {
        assert_eq!(Manifest::decode(&m.encode()).as_ref(), Ok(&m));
    }
    let _ = decode_tombstones(data);
});

//! Any bytes as a WAL file (newest or not): operations, a torn-tail cut, or an error naming
//! the offset, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

use drift_engine::wal::replay::{read_file, Replayed};

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.wal");
    for is_last in [false, true] {
        let mut out = Replayed::default();
        if let Ok(valid) = read_file(path, data, is_last, 0, &mut out) {
            assert!(valid <= data.len());
            assert!(is_last || valid == data.len());
        }
    }
    let _ = drift_engine::wal::record::decode_record(data);
});

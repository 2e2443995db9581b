//! Kafka record values in each format, as the sink decodes and checks them: the first byte
//! picks the format and whether a key is present, the next its length; the rest is the key
//! and the value. Decoding and checking must return writes or a bad-record error, never panic.
#![no_main]

use drift_connectors::kafka::{Decoder, Format};
use drift_engine::collection::check_record;
use drift_engine::{CollectionConfig, Metric, Write};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let format = match head % 3 {
        0 => Format::Json,
        1 => Format::F32le,
        _ => Format::Arrow,
    };
    let (key, value) = if head & 0x80 != 0 && !rest.is_empty() {
        let n = (rest[0] as usize).min(rest.len() - 1);
        (Some(&rest[1..1 + n]), &rest[1 + n..])
    } else {
        (None, rest)
    };
    // A null value (a tombstone) when bit 6 is set.
    let value = (head & 0x40 == 0).then_some(value);
    let decoder = Decoder {
        format,
        collection: "c".into(),
        max_message_bytes: 1 << 16,
    };
    let config = CollectionConfig::new(4, Metric::L2);
    if let Ok(writes) = decoder.decode(key, value) {
        for w in writes {
            if let Write::Upsert(r) = w {
                let _ = check_record("c", &config, &r);
            }
        }
    }
});

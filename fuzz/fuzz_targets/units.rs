//! Durations, sizes and times as users type them (`--timeout`, `--grace`,
//! `--since`, `--max-log-size`, `--size`): parsing never panics, and a
//! time that parses prints as RFC 3339 that parses back to the same instant.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::units::{human_size, parse_duration, parse_size};
use shared::Timestamp;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let _ = parse_duration(text);
    if let Ok(n) = parse_size(text) {
        let _ = human_size(n);
    }
    if let Ok(t) = Timestamp::parse_rfc3339(text) {
        let printed = t.to_rfc3339_millis();
        let back = Timestamp::parse_rfc3339(&printed)
            .unwrap_or_else(|e| panic!("{printed:?} (from {text:?}) does not parse: {e}"));
        assert_eq!(back.as_nanos() / 1_000_000, t.as_nanos().div_euclid(1_000_000) );
    }
});

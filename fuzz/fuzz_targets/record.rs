//! session.json as found on disk, whatever it holds: parsing never panics,
//! and a record that parses survives being written and read back unchanged
//! (what the supervisor does to it at every update).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use shared::record::Record;

fuzz_target!(|bytes: &[u8]| {
    let path = Path::new("/fuzz/session.json");
    let Ok(record) = Record::from_slice(path, bytes) else {
        return;
    };
    let again = serde_json::to_vec(&record).expect("a parsed record serialises");
    let back = Record::from_slice(path, &again).expect("a written record parses");
    assert_eq!(record, back);
});

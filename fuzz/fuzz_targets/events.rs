//! What the supervisor reads from files and programs it does not control:
//! index entries (24 bytes each) decode or are refused, and re-encode to
//! the same bytes; codex's JSONL event lines, whatever they hold, update
//! the agent summary without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::agent::Agent;
use shared::index::{Entry, ENTRY_SIZE};

fuzz_target!(|bytes: &[u8]| {
    for chunk in bytes.chunks_exact(ENTRY_SIZE) {
        if let Some(entry) = Entry::decode(chunk) {
            let again = entry.encode();
            assert_eq!(Entry::decode(&again), Some(entry));
            assert_eq!(again[..22], chunk[..22]);
        }
    }
    let mut agent = Agent::default();
    for line in bytes.split(|&b| b == b'\n') {
        agent.observe_line(line);
    }
});

//! The attach wire protocol, as a peer may send it: decoding never panics,
//! gives the same frames whether the bytes come at once or one by one, and
//! every decoded frame encodes back to bytes that decode to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::protocol::Frame;

/// Decodes frames off `buf` until it needs more bytes or meets an error.
fn drain(buf: &mut Vec<u8>, frames: &mut Vec<Frame>) -> bool {
    loop {
        match Frame::decode(buf) {
            Ok(Some(f)) => frames.push(f),
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}

fuzz_target!(|bytes: &[u8]| {
    let mut whole = bytes.to_vec();
    let mut at_once = Vec::new();
    let whole_ok = drain(&mut whole, &mut at_once);

    let mut piecewise = Vec::new();
    let mut buf = Vec::new();
    let mut ok = true;
    for &b in bytes {
        buf.push(b);
        if !drain(&mut buf, &mut piecewise) {
            ok = false;
            break;
        }
    }
    assert_eq!(ok, whole_ok);
    assert_eq!(at_once, piecewise);

    for frame in at_once {
        let mut encoded = frame.encode();
        let decoded = Frame::decode(&mut encoded).expect("an encoded frame decodes");
        assert_eq!(decoded.as_ref(), Some(&frame));
        assert!(encoded.is_empty(), "decoding consumed the whole frame");
    }
});

//! Detach keys: parsing `ctrl-p,ctrl-q`, and spotting the sequence in the
//! typed bytes even inside a larger read or split across reads.

/// A sequence of keys that detaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachKeys(Vec<u8>);

impl DetachKeys {
    /// Parses a comma-separated list of keys: `ctrl-X` (X a letter or one
    /// of `@[\]^_`) or a single printable character.
    pub fn parse(spec: &str) -> Result<DetachKeys, String> {
        let bad = |k: &str| {
            format!("invalid detach key {k:?}: expected ctrl-X (such as ctrl-\\ or ctrl-p) or one character")
        };
        let mut bytes = Vec::new();
        for key in spec.split(',') {
            let key = key.trim();
            let byte = match key.strip_prefix("ctrl-").or_else(|| key.strip_prefix("C-")) {
                Some(rest) if rest.len() == 1 => {
                    let c = rest.as_bytes()[0].to_ascii_uppercase();
                    if !(b'@'..=b'_').contains(&c) {
                        return Err(bad(key));
                    }
                    c - b'@'
                }
                Some(_) => return Err(bad(key)),
                None if key.len() == 1 && key.as_bytes()[0].is_ascii_graphic() => key.as_bytes()[0],
                None => return Err(bad(key)),
            };
            bytes.push(byte);
        }
        if bytes.is_empty() {
            return Err(bad(spec));
        }
        Ok(DetachKeys(bytes))
    }
}

/// Watches typed bytes for the detach sequence.
#[derive(Debug)]
pub struct Detector {
    keys: Vec<u8>,
    /// How many keys of the sequence have been typed so far (held back).
    matched: usize,
}

impl Detector {
    /// A detector of `keys`.
    pub fn new(keys: &DetachKeys) -> Detector {
        Detector {
            keys: keys.0.clone(),
            matched: 0,
        }
    }

    /// Takes typed bytes; returns what to pass on to the session and
    /// whether the detach sequence was completed (bytes after it dropped).
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return (out, true);
                }
                continue;
            }
            // A partial match that breaks off was real typing: pass it on.
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
                if self.keys.len() == 1 {
                    return (out, true);
                }
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(s: &str) -> DetachKeys {
        DetachKeys::parse(s).unwrap()
    }

    #[test]
    fn parses_forms() {
        assert_eq!(keys("ctrl-\\"), DetachKeys(vec![0x1c]));
        assert_eq!(keys("ctrl-p,ctrl-q"), DetachKeys(vec![0x10, 0x11]));
        assert_eq!(keys("ctrl-a,d"), DetachKeys(vec![0x01, b'd']));
        for bad in ["", "ctrl-", "ctrl-ab", "alt-x", "ctrl-1", "  "] {
            assert!(DetachKeys::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn spots_keys_inside_and_across_reads() {
        let mut d = Detector::new(&keys("ctrl-\\"));
        assert_eq!(d.feed(b"ls\x1cpwd"), (b"ls".to_vec(), true));
        let mut d = Detector::new(&keys("ctrl-p,ctrl-q"));
        assert_eq!(d.feed(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(d.feed(b"\x11"), (Vec::new(), true));
        // A broken-off prefix is typing, passed on in order.
        let mut d = Detector::new(&keys("ctrl-p,ctrl-q"));
        assert_eq!(d.feed(b"\x10x"), (b"\x10x".to_vec(), false));
        assert_eq!(d.feed(b"\x10\x10\x11"), (b"\x10".to_vec(), true));
    }
}

//! Session ids: validated names (`--name`) and generated, memorable ids
//! (`adjective-animal-xxxx`).
//!
//! An id is validated before any path is built from it, so a [`SessionId`]
//! can always be joined to the root safely: it never holds `/`, never starts
//! with `.`, and is never all digits (those are row numbers).

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};

use crate::error::{Error, Result};

/// Longest id or name accepted, in bytes.
pub const MAX_LEN: usize = 64;

/// A validated session id: `[a-z0-9][a-z0-9._-]{0,63}`, not all digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// Validates `s` as an id or a `--name`.
    pub fn parse(s: &str) -> Result<Self> {
        let invalid = |reason| Error::InvalidId {
            id: s.to_string(),
            reason,
        };
        let bytes = s.as_bytes();
        let Some(&first) = bytes.first() else {
            return Err(invalid("it is empty"));
        };
        if bytes.len() > MAX_LEN {
            return Err(invalid("it is longer than 64 characters"));
        }
        if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
            return Err(invalid("it must start with a lowercase letter or a digit"));
        }
        if !bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        {
            return Err(invalid(
                "only lowercase letters, digits, '.', '_' and '-' are allowed",
            ));
        }
        if bytes.iter().all(u8::is_ascii_digit) {
            return Err(invalid(
                "it is all digits, which would read as a row number",
            ));
        }
        Ok(SessionId(s.to_string()))
    }

    /// A fresh random id such as `crisp-owlet-3f2a`.
    pub fn generate() -> Self {
        let r = random_u64();
        let adjective = ADJECTIVES[(r % ADJECTIVES.len() as u64) as usize];
        let animal = ANIMALS[((r >> 16) % ANIMALS.len() as u64) as usize];
        let suffix = (r >> 32) as u16;
        SessionId(format!("{adjective}-{animal}-{suffix:04x}"))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for SessionId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// 64 random bits from the standard library's randomly keyed hasher (seeded
/// from the OS), mixed with the pid and the clock so that two processes, or
/// two calls in one process, never share a value in practice.
pub(crate) fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    h.finish()
}

const ADJECTIVES: &[&str] = &[
    "amber", "bold", "brave", "brisk", "calm", "clever", "cosy", "crisp", "curly", "dapper",
    "deft", "eager", "early", "fair", "fancy", "fleet", "fond", "fresh", "gentle", "glad",
    "golden", "grand", "happy", "hardy", "humble", "jolly", "keen", "kind", "lively", "lucky",
    "merry", "mellow", "mighty", "misty", "neat", "nimble", "noble", "plucky", "polite", "proud",
    "quick", "quiet", "rapid", "rosy", "rustic", "shiny", "silent", "sleek", "snappy", "sober",
    "spry", "steady", "sturdy", "sunny", "swift", "tidy", "trusty", "vivid", "warm", "wise",
    "witty", "young", "zesty", "zippy",
];

const ANIMALS: &[&str] = &[
    "alpaca", "badger", "beaver", "bison", "bobcat", "camel", "cheetah", "condor", "cony",
    "coyote", "crane", "dingo", "dolphin", "eagle", "falcon", "ferret", "finch", "gazelle",
    "gecko", "gibbon", "hare", "hedgehog", "heron", "ibis", "impala", "jackal", "jaguar", "koala",
    "lemur", "lynx", "magpie", "marmot", "marten", "mole", "moose", "narwhal", "newt", "ocelot",
    "otter", "owlet", "panda", "parrot", "pelican", "puffin", "quail", "rabbit", "raven", "robin",
    "salmon", "seal", "shrew", "sparrow", "stoat", "swan", "takin", "tapir", "tern", "toucan",
    "trout", "turtle", "walrus", "weasel", "wombat", "yak",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_good_names() {
        for s in [
            "a",
            "crisp-owlet-3f2a",
            "job.1",
            "x_y",
            "0abc",
            "9-9",
            &"a".repeat(64),
        ] {
            assert_eq!(SessionId::parse(s).unwrap().as_str(), s);
        }
    }

    #[test]
    fn rejects_bad_names() {
        for s in [
            "",
            ".",
            "..",
            ".hidden",
            "-x",
            "_x",
            "a/b",
            "../x",
            "a b",
            "A",
            "a\0b",
            "12345",
            "0",
            "ünï",
            &"a".repeat(65),
            &"a".repeat(300),
        ] {
            assert!(SessionId::parse(s).is_err(), "{s:?} should be refused");
        }
    }

    #[test]
    fn generated_ids_are_valid_and_varied() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let id = SessionId::generate();
            SessionId::parse(id.as_str()).unwrap();
            let parts: Vec<_> = id.as_str().split('-').collect();
            assert_eq!(parts.len(), 3, "{id}");
            assert_eq!(parts[2].len(), 4, "{id}");
            seen.insert(id);
        }
        assert!(seen.len() > 990, "only {} distinct ids of 1000", seen.len());
    }

    #[test]
    fn generated_suffixes_vary() {
        let suffixes: std::collections::HashSet<String> = (0..1000)
            .map(|_| {
                SessionId::generate()
                    .as_str()
                    .rsplit('-')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert!(
            suffixes.len() > 900,
            "only {} distinct suffixes",
            suffixes.len()
        );
        let words = |at: usize| -> std::collections::HashSet<String> {
            (0..1000)
                .map(|_| {
                    SessionId::generate()
                        .as_str()
                        .split('-')
                        .nth(at)
                        .unwrap()
                        .to_string()
                })
                .collect()
        };
        assert!(words(0).len() > 10, "adjectives do not vary");
        assert!(words(1).len() > 10, "animals do not vary");
    }

    #[test]
    fn as_ref_is_the_id() {
        let id = SessionId::parse("crisp-owlet-3f2a").unwrap();
        let s: &str = id.as_ref();
        assert_eq!(s, "crisp-owlet-3f2a");
    }
}

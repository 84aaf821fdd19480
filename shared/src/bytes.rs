//! Text that may not be UTF-8 (command lines, paths, output), in JSON.
//!
//! The convention (the README's "Bytes that are not UTF-8"): valid UTF-8 is
//! written as it is; each byte that is not part of valid UTF-8 becomes the
//! escape `\udcXX` (XX the byte in hex), a lone surrogate, as Python's
//! `surrogateescape` error handler (PEP 383) does. No valid UTF-8 text can
//! produce these escapes, so the original bytes always come back:
//! `s.encode("utf-8", "surrogateescape")` in Python, [`deserialize`] here.
//! The JSON text itself is always valid UTF-8 (ASCII escapes).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;
use serde_json::value::RawValue;

/// Appends `bytes` to `buf` as a JSON string (quotes included).
pub fn write_json_string(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.push(b'"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => buf.extend_from_slice(b"\\\""),
                '\\' => buf.extend_from_slice(b"\\\\"),
                '\n' => buf.extend_from_slice(b"\\n"),
                '\r' => buf.extend_from_slice(b"\\r"),
                '\t' => buf.extend_from_slice(b"\\t"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    buf.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
                }
                c => {
                    let mut tmp = [0u8; 4];
                    buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                }
            }
        }
        for &b in chunk.invalid() {
            buf.extend_from_slice(format!("\\udc{b:02x}").as_bytes());
        }
    }
    buf.push(b'"');
}

/// `bytes` as a JSON string (quotes included).
pub fn json_string(bytes: &[u8]) -> String {
    let mut buf = Vec::with_capacity(bytes.len() + 2);
    write_json_string(&mut buf, bytes);
    String::from_utf8(buf).expect("JSON strings are written as UTF-8")
}

/// `text`, a JSON text that may hold bytes that are not UTF-8 inside its
/// strings (an event line a program wrote), as valid UTF-8 JSON with those
/// bytes as `\udcXX` escapes; `None` when it is not JSON either way.
pub fn json_text(text: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    let valid = |t: &[u8]| serde_json::from_slice::<de::IgnoredAny>(t).is_ok();
    if std::str::from_utf8(text).is_ok() {
        return valid(text).then_some(std::borrow::Cow::Borrowed(text));
    }
    let mut out = Vec::with_capacity(text.len() + 16);
    for chunk in text.utf8_chunks() {
        out.extend_from_slice(chunk.valid().as_bytes());
        for &b in chunk.invalid() {
            out.extend_from_slice(format!("\\udc{b:02x}").as_bytes());
        }
    }
    valid(&out).then_some(std::borrow::Cow::Owned(out))
}

/// Serializes bytes as a JSON string by the convention (for
/// `#[serde(serialize_with)]`; JSON serializers only).
pub fn serialize<S: Serializer>(bytes: &OsStr, s: S) -> Result<S::Ok, S::Error> {
    match plain(bytes.as_bytes()) {
        Some(text) => s.serialize_str(text),
        None => raw(bytes.as_bytes()).serialize(s),
    }
}

/// [`serialize`] for a list.
pub fn serialize_all<S: Serializer>(all: &[OsString], s: S) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(all.len()))?;
    for b in all {
        match plain(b.as_bytes()) {
            Some(text) => seq.serialize_element(text)?,
            None => seq.serialize_element(&raw(b.as_bytes()))?,
        }
    }
    seq.end()
}

/// `bytes` as text when [`write_json_string`] would write them unchanged
/// between the quotes (valid UTF-8 without quotes, backslashes, control
/// characters or DEL), which a JSON serializer then writes as they are:
/// most paths and command lines, written without building a copy.
fn plain(bytes: &[u8]) -> Option<&str> {
    let quiet = |&b: &u8| b >= 0x20 && b != 0x7f && b != b'"' && b != b'\\';
    bytes
        .iter()
        .all(quiet)
        .then(|| std::str::from_utf8(bytes).ok())
        .flatten()
}

/// [`serialize`] for an optional value (`null` when absent).
pub fn serialize_opt<S: Serializer>(b: &Option<OsString>, s: S) -> Result<S::Ok, S::Error> {
    match b {
        Some(b) => serialize(b, s),
        None => s.serialize_none(),
    }
}

fn raw(bytes: &[u8]) -> Box<RawValue> {
    RawValue::from_string(json_string(bytes)).expect("a JSON string is JSON")
}

/// Reads a JSON string written by the convention back into its bytes (for
/// `#[serde(deserialize_with)]`).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OsString, D::Error> {
    d.deserialize_bytes(BytesVisitor)
}

/// [`deserialize`] for a list.
pub fn deserialize_all<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<OsString>, D::Error> {
    struct All;
    impl<'de> Visitor<'de> for All {
        type Value = Vec<OsString>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of strings")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut all = Vec::new();
            while let Some(b) = seq.next_element::<Bytes>()? {
                all.push(b.0);
            }
            Ok(all)
        }
    }
    d.deserialize_seq(All)
}

/// One string read by the convention.
struct Bytes(OsString);

impl<'de> serde::Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize(d).map(Bytes)
    }
}

struct BytesVisitor;

impl Visitor<'_> for BytesVisitor {
    type Value = OsString;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<OsString, E> {
        Ok(OsString::from(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<OsString, E> {
        Ok(OsString::from_vec(from_wtf8(v)))
    }
}

/// serde_json reads a lone surrogate escape into bytes as its 3-byte
/// generalized UTF-8 (WTF-8) form: U+DC80..U+DCFF (`ED B2 80`..`ED B3 BF`)
/// are turned back into the bytes 0x80..0xFF they stand for.
fn from_wtf8(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == 0xED && i + 2 < v.len() && matches!(v[i + 1], 0xB2 | 0xB3) {
            let cp = 0xD000 | (u32::from(v[i + 1] & 0x3F) << 6) | u32::from(v[i + 2] & 0x3F);
            out.push((cp - 0xDC00) as u8);
            i += 3;
        } else {
            out.push(v[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct T {
        #[serde(serialize_with = "serialize", deserialize_with = "deserialize")]
        one: OsString,
        #[serde(serialize_with = "serialize_all", deserialize_with = "deserialize_all")]
        all: Vec<OsString>,
    }

    #[test]
    fn round_trips_any_bytes_as_valid_utf8_json() {
        let t = T {
            one: OsString::from_vec(b"caf\xe9 \xff\xfe ok \"q\" \\".to_vec()),
            all: vec![
                "plain".into(),
                OsString::from_vec(b"\x80\n\xed\xb2\x80".to_vec()),
            ],
        };
        let json = serde_json::to_string(&t).unwrap();
        assert!(
            json.contains(r#""caf\udce9 \udcff\udcfe ok \"q\" \\""#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<T>(&json).unwrap(), t);
        // Old records, all UTF-8, read as before.
        let old: T = serde_json::from_str(r#"{"one":"héllo","all":["a","b c"]}"#).unwrap();
        assert_eq!(old.one, "héllo");
        assert_eq!(old.all, ["a", "b c"]);
    }

    #[test]
    fn control_characters_are_escaped_as_json_requires() {
        let text = json_string(b"a\x01b\x1f\x7f\n\t\r\"\\");
        assert_eq!(text, r#""a\u0001b\u001f\u007f\n\t\r\"\\""#);
        let back: String = serde_json::from_str(&text).unwrap();
        assert_eq!(back.as_bytes(), b"a\x01b\x1f\x7f\n\t\r\"\\");
    }

    #[test]
    fn read_from_a_json_value_too_and_wrong_types_are_named() {
        let v = serde_json::json!({"one": "caf\u{e9}", "all": ["x", "y"]});
        let t: T = serde_json::from_value(v).unwrap();
        assert_eq!(t.one, OsString::from("caf\u{e9}"));
        assert_eq!(t.all, [OsString::from("x"), OsString::from("y")]);
        let err = serde_json::from_str::<T>(r#"{"one":5,"all":[]}"#).unwrap_err();
        assert!(err.to_string().contains("expected a string"), "{err}");
        let err = serde_json::from_str::<T>(r#"{"one":"x","all":5}"#).unwrap_err();
        assert!(
            err.to_string().contains("expected a list of strings"),
            "{err}"
        );
    }

    #[test]
    fn text_whose_bytes_look_like_part_of_an_escape_comes_back_as_it_was() {
        // ò and ó are C3 B2 and C3 B3: the middle bytes of a surrogate's
        // WTF-8 form, after another lead byte.
        let t = T {
            one: OsString::from("perfectó! ò?"),
            all: vec![OsString::from("ó."), OsString::from("\u{ed}\u{b2}")],
        };
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<T>(&json).unwrap(), t);
    }

    #[test]
    fn a_cut_off_escape_at_the_end_is_kept_as_bytes() {
        assert_eq!(from_wtf8(b"a\xed\xb2"), b"a\xed\xb2");
        assert_eq!(from_wtf8(b"a\xed\xb2\xbf"), b"a\xbf");
    }

    #[test]
    fn json_lines_with_bad_bytes_become_valid_json() {
        assert_eq!(json_text(br#"{"a":1}"#).unwrap().as_ref(), br#"{"a":1}"#);
        let fixed = json_text(b"{\"a\":\"x\xffy\"}").unwrap();
        assert_eq!(fixed.as_ref(), br#"{"a":"x\udcffy"}"#);
        assert!(json_text(b"not json \xff").is_none());
    }

    /// The quick way for plain text writes exactly what the escaping way
    /// writes, and every byte that needs escaping takes the escaping way.
    #[test]
    fn plain_text_is_written_as_the_escaping_way_writes_it() {
        let mut cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"/home/me/src".to_vec(),
            "héllo wörld ✓ \u{2028}".as_bytes().to_vec(),
            b"a\x7fb".to_vec(),
            b"\xff".to_vec(),
        ];
        cases.extend((0u8..=0x7f).map(|b| vec![b'x', b, b'y']));
        for bytes in cases {
            let one = OsString::from_vec(bytes.clone());
            let quick = serde_json::to_string(&T {
                one: one.clone(),
                all: vec![one.clone()],
            })
            .unwrap();
            let slow = format!(r#"{{"one":{s},"all":[{s}]}}"#, s = json_string(&bytes));
            assert_eq!(quick, slow, "{bytes:?}");
            let plain = plain(&bytes).is_some();
            let escapes = bytes
                .iter()
                .any(|&b| b < 0x20 || b == 0x7f || b == b'"' || b == b'\\');
            assert_eq!(
                plain,
                !escapes && std::str::from_utf8(&bytes).is_ok(),
                "{bytes:?}"
            );
        }
    }
}

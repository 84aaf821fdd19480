//! Session data shown to people: text a session holds (its argv, prompt,
//! labels, agent messages, commands and their output inside events, file
//! paths, error texts) is untrusted, since a prompt injection can make an
//! agent print anything. Every human-readable view passes it through here
//! so that nothing in it is interpreted by the terminal.
//!
//! The convention (the README's "Showing session data"), close to the
//! C-style escapes of `ls --quoting-style=escape` and of journalctl:
//!
//! - C0 controls and DEL: `\a \b \t \n \v \f \r \e` for those with a C
//!   name, else `\xHH` (`\x00`, `\x7f`);
//! - bytes that are not UTF-8: `\xHH`, one per byte;
//! - C1 controls (U+0080..U+009F, 8-bit CSI U+009B among them):
//!   `\u{9b}`;
//! - bidirectional overrides and isolates (U+202A..U+202E,
//!   U+2066..U+2069), which reorder what follows them on screen:
//!   `\u{202e}`.
//!
//! Backslashes are left as they are, so paths and regexes stay readable:
//! the escapes are for the eye, not for parsing back (`--json` and `--raw`
//! are the lossless channels). Two modes: [`line`] escapes everything, for
//! one-line cells and messages; [`lines`] keeps newlines and tabs, for
//! multi-line text such as an agent's message.

use std::fmt::Write as _;

/// `text` with every control character escaped: for a single line (a
/// table cell, an error message).
pub fn line(text: &str) -> String {
    escape(text.as_bytes(), false)
}

/// `bytes` (which may not be UTF-8) as [`line`] shows them.
pub fn line_bytes(bytes: &[u8]) -> String {
    escape(bytes, false)
}

/// `text` escaped as [`line`] does, except newlines and tabs, which are
/// kept: for multi-line text shown as lines.
pub fn lines(text: &str) -> String {
    escape(text.as_bytes(), true)
}

/// `bytes` (which may not be UTF-8) as [`lines`] shows them.
pub fn lines_bytes(bytes: &[u8]) -> String {
    escape(bytes, true)
}

/// Whether `c` would be escaped (newline and tab included).
pub fn needs_escape(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// The bidirectional embeddings, overrides and isolates.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn escape(bytes: &[u8], keep_lines: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        if !valid.chars().any(needs_escape) {
            out.push_str(valid);
        } else {
            for c in valid.chars() {
                push_char(&mut out, c, keep_lines);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

fn push_char(out: &mut String, c: char, keep_lines: bool) {
    let named = match c {
        '\n' | '\t' if keep_lines => return out.push(c),
        '\x07' => "\\a",
        '\x08' => "\\b",
        '\t' => "\\t",
        '\n' => "\\n",
        '\x0b' => "\\v",
        '\x0c' => "\\f",
        '\r' => "\\r",
        '\x1b' => "\\e",
        c if (c as u32) < 0x20 || c == '\x7f' => {
            let _ = write!(out, "\\x{:02x}", c as u32);
            return;
        }
        c if needs_escape(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
            return;
        }
        c => return out.push(c),
    };
    out.push_str(named);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_would_interpret() {
        assert_eq!(
            line("plain text, ünïcode, 漢字"),
            "plain text, ünïcode, 漢字"
        );
        assert_eq!(
            line("\x1b]52;c;aGk=\x07\x1b[2J\r\x08x\x7f\0"),
            r"\e]52;c;aGk=\a\e[2J\r\bx\x7f\x00"
        );
        assert_eq!(line("a\nb\tc"), r"a\nb\tc");
        assert_eq!(lines("a\nb\tc\r"), "a\nb\tc\\r");
        assert_eq!(line("\u{9b}31m\u{85}"), r"\u{9b}31m\u{85}");
        assert_eq!(line("abc\u{202e}fed\u{2066}"), r"abc\u{202e}fed\u{2066}");
        assert_eq!(line_bytes(b"ok\xff\xc3("), r"ok\xff\xc3(");
        assert_eq!(lines_bytes(b"\xe2\x80\xae\n"), "\\u{202e}\n");
        assert_eq!(line(r"C:\dir\n"), r"C:\dir\n", "backslashes kept");
    }

    #[test]
    fn nothing_escaped_holds_a_control() {
        let all: String = (0..0x3000u32).filter_map(char::from_u32).collect();
        for c in line(&all).chars().chain(lines(&all).chars()) {
            assert!(!needs_escape(c) || c == '\n' || c == '\t', "{c:?}");
        }
        assert!(!line(&all).contains(['\n', '\t']));
    }
}

//! What codex-attach writes to the user's terminal, and how it is undone.
//!
//! Output goes through a [`Display`]: it keeps the session's terminal
//! queries out of the replay (a terminal answers them as if typed, and the
//! answers would reach the program as keys), keeps count of the kitty
//! keyboard protocol's pushes and pops on each screen (a pop never goes
//! below what codex-attach pushed on attach), notes which modes the
//! program touched, and runs everything shown through a terminal emulator
//! so that, on the way out, it knows where the cursor is and what is on the
//! screen. [`Display::restore`] then gives the bytes that put the terminal
//! back: every mode a program may have switched, the kitty stack popped
//! back to where it was, and the cursor on a fresh line below the text.

use std::num::NonZeroU16;

/// Longest escape sequence (or string: OSC, DCS) held back whole; longer
/// ones pass as they come.
const MAX_HELD: usize = 64 * 1024;

/// Modes put back on every way out, whatever the program did: keypad and
/// cursor keys to normal, mouse reporting, focus events, bracketed paste
/// and synchronized output off, autowrap on, insert mode off, the cursor
/// shown in the terminal's own shape, colours and attributes reset,
/// modifyOtherKeys back to the terminal's setting, the ASCII character set.
const RESET: &[u8] = b"\x1b[?1l\x1b>\
\x1b[?9l\x1b[?1000l\x1b[?1001l\x1b[?1002l\x1b[?1003l\x1b[?1005l\x1b[?1006l\x1b[?1015l\x1b[?1016l\
\x1b[?1004l\x1b[?2004l\x1b[?2026l\x1b[?7h\x1b[4l\x1b[?25h\x1b[0 q\x1b[0m\x1b[>4m\x1b(B\x0f";
/// The scroll region and origin mode, put back after the cursor's place is
/// known (both move the cursor home).
const RESET_REGION: &[u8] = b"\x1b[?6l\x1b[r";
/// Pushes a kitty keyboard entry with no flags: the program's own pushes
/// go above it, and the pop on the way out takes the stack back exactly.
pub const KITTY_PUSH: &[u8] = b"\x1b[>0u";

/// One escape sequence's shape, enough to classify it.
struct Csi<'a> {
    prefix: Option<u8>,
    params: &'a [u8],
    inter: &'a [u8],
    fin: u8,
}

impl<'a> Csi<'a> {
    /// `seq` is a whole `ESC [ ... final` sequence.
    fn parse(seq: &'a [u8]) -> Csi<'a> {
        let body = &seq[2..seq.len() - 1];
        let (prefix, body) = match body.first() {
            Some(&p @ (b'<' | b'=' | b'>' | b'?')) => (Some(p), &body[1..]),
            _ => (None, body),
        };
        let split = body
            .iter()
            .position(|b| (0x20..=0x2f).contains(b))
            .unwrap_or(body.len());
        Csi {
            prefix,
            params: &body[..split],
            inter: &body[split..],
            fin: seq[seq.len() - 1],
        }
    }

    fn numbers(&self) -> impl Iterator<Item = Option<u32>> + '_ {
        self.params
            .split(|&b| b == b';')
            .map(|n| std::str::from_utf8(n).ok()?.parse().ok())
    }

    fn first(&self) -> Option<u32> {
        self.numbers().next().flatten()
    }

    /// Whether a terminal answers this sequence (a query).
    fn is_query(&self) -> bool {
        match (self.fin, self.prefix, self.inter) {
            // Status and cursor position reports (DSR, DECXCPR).
            (b'n', None | Some(b'?'), b"") => true,
            // Device attributes, primary, secondary and tertiary.
            (b'c', None | Some(b'>') | Some(b'='), b"") => true,
            // DECRQM, ANSI and private modes.
            (b'p', None | Some(b'?'), b"$") => true,
            // XTVERSION; the kitty keyboard flags; modifyOtherKeys' value.
            (b'q', Some(b'>'), b"") | (b'u', Some(b'?'), b"") | (b'm', Some(b'?'), b"") => true,
            // Window reports (XTWINOPS 11-21).
            (b't', None, b"") => matches!(self.first(), Some(11 | 13..=16 | 18..=21)),
            // DECREQTPARM.
            (b'x', None, b"") => matches!(self.first(), None | Some(0 | 1)),
            _ => false,
        }
    }
}

/// Whether a string sequence (`ESC ]`, `ESC P`, ... up to its terminator)
/// is a query: an OSC with a `?` field (colours, the clipboard, a
/// program-status query), or a DCS request (DECRQSS `$q`, XTGETTCAP `+q`).
fn string_is_query(seq: &[u8]) -> bool {
    let body = seq[2..]
        .strip_suffix(b"\x1b\\")
        .or_else(|| seq[2..].strip_suffix(b"\x07"))
        .unwrap_or(&seq[2..]);
    match seq[1] {
        b']' => body.split(|&b| b == b';').skip(1).any(|f| f == b"?"),
        b'P' => body.starts_with(b"$q") || body.starts_with(b"+q"),
        _ => false,
    }
}

/// The length of the escape sequence at the start of `data` (which begins
/// with ESC), or `None` when it is not complete yet.
fn sequence_len(data: &[u8]) -> Option<usize> {
    let &kind = data.get(1)?;
    match kind {
        b'[' => {
            for (i, &b) in data.iter().enumerate().skip(2) {
                match b {
                    0x20..=0x3f => {}
                    // A final byte, or something that breaks the sequence
                    // (which then ends there).
                    0x40..=0x7e => return Some(i + 1),
                    _ => return Some(i),
                }
            }
            None
        }
        b']' | b'P' | b'_' | b'^' | b'X' => {
            for i in 2..data.len() {
                if kind == b']' && data[i] == 0x07 {
                    return Some(i + 1);
                }
                if data[i] == 0x1b && data.get(i + 1) == Some(&b'\\') {
                    return Some(i + 2);
                }
                if data[i] == 0x18 || data[i] == 0x1a {
                    return Some(i + 1);
                }
            }
            None
        }
        // ESC, intermediates, a final byte (ESC ( B, ESC =, ESC 7 ...).
        _ => {
            for (i, &b) in data.iter().enumerate().skip(1) {
                if !(0x20..=0x2f).contains(&b) {
                    return Some(i + 1);
                }
            }
            None
        }
    }
}

/// The user's terminal as codex-attach has drawn on it.
pub struct Display {
    /// The end of the last output: an escape sequence not yet complete.
    carry: Vec<u8>,
    /// What the program pushed on the kitty keyboard stack, on the main
    /// screen and on the alternate one.
    kitty: [u32; 2],
    /// The private mode that put the terminal in the alternate screen
    /// (47, 1047 or 1049), while it is there.
    alternate: Option<u32>,
    /// Whether the program touched alternate scroll (1007), whose default
    /// differs between terminals.
    alternate_scroll: bool,
    /// The screen as drawn, to know where the cursor is and what is on it.
    screen: vt100::Parser,
}

impl Display {
    /// A display of `cols` x `rows`, just cleared.
    pub fn new((cols, rows): (u16, u16)) -> Display {
        let nz = |n: u16| NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN);
        Display {
            carry: Vec::new(),
            kitty: [0, 0],
            alternate: None,
            alternate_scroll: false,
            screen: vt100::Parser::new(nz(rows), nz(cols), 0),
        }
    }

    /// The terminal changed size.
    pub fn resize(&mut self, (cols, rows): (u16, u16)) {
        if let (Some(r), Some(c)) = (NonZeroU16::new(rows), NonZeroU16::new(cols)) {
            self.screen.screen_mut().set_size(r, c);
        }
    }

    /// Output of the session on its way to the terminal: what to write.
    /// `replay`: old output, whose queries are dropped.
    pub fn show(&mut self, output: &[u8], replay: bool) -> Vec<u8> {
        let mut data = std::mem::take(&mut self.carry);
        data.extend_from_slice(output);
        let mut out = Vec::with_capacity(data.len());
        let mut at = 0;
        while at < data.len() {
            let Some(esc) = data[at..].iter().position(|&b| b == 0x1b || b == 0x05) else {
                out.extend_from_slice(&data[at..]);
                break;
            };
            out.extend_from_slice(&data[at..at + esc]);
            at += esc;
            if data[at] == 0x05 {
                // ENQ: the terminal answers it with its answerback.
                if !replay {
                    out.push(0x05);
                }
                at += 1;
                continue;
            }
            let Some(len) = sequence_len(&data[at..]) else {
                if data.len() - at <= MAX_HELD {
                    self.carry = data[at..].to_vec();
                } else {
                    out.extend_from_slice(&data[at..]);
                }
                break;
            };
            let seq = &data[at..at + len];
            at += len;
            self.sequence(seq, replay, &mut out);
        }
        self.screen.process(&out);
        out
    }

    /// One whole escape sequence: noted, and written as it is, rewritten
    /// or dropped.
    fn sequence(&mut self, seq: &[u8], replay: bool, out: &mut Vec<u8>) {
        let screen = usize::from(self.alternate.is_some());
        match seq.get(1) {
            Some(b'[') if seq.len() >= 3 => {
                let csi = Csi::parse(seq);
                if replay && csi.is_query() {
                    return;
                }
                match (csi.fin, csi.prefix) {
                    (b'u', Some(b'>')) => self.kitty[screen] += 1,
                    (b'u', Some(b'<')) => {
                        // Never below what codex-attach pushed.
                        let n = csi.first().unwrap_or(1).max(1).min(self.kitty[screen]);
                        self.kitty[screen] -= n;
                        if n > 0 {
                            out.extend_from_slice(format!("\x1b[<{n}u").as_bytes());
                        }
                        return;
                    }
                    (b'h' | b'l', Some(b'?')) => {
                        let set = csi.fin == b'h';
                        for mode in csi.numbers().flatten() {
                            match mode {
                                47 | 1047 | 1049 if set => self.alternate = Some(mode),
                                47 | 1047 | 1049 => self.alternate = None,
                                1007 => self.alternate_scroll = true,
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            Some(b']' | b'P') if replay && string_is_query(seq) => return,
            Some(b'Z') if replay => return,
            _ => {}
        }
        out.extend_from_slice(seq);
    }

    /// The bytes that put the terminal back as it was before the attach
    /// (given that it was pushed [`KITTY_PUSH`] then), with the cursor at
    /// the start of a line below everything on the screen.
    pub fn restore(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let pop = |out: &mut Vec<u8>, n: u32| {
            if n > 0 {
                out.extend_from_slice(format!("\x1b[<{n}u").as_bytes());
            }
        };
        if let Some(mode) = self.alternate.take() {
            pop(&mut out, self.kitty[1]);
            out.extend_from_slice(format!("\x1b[?{mode}l").as_bytes());
        }
        pop(&mut out, self.kitty[0] + 1);
        self.kitty = [0, 0];
        out.extend_from_slice(RESET);
        if std::mem::take(&mut self.alternate_scroll) {
            out.extend_from_slice(b"\x1b[?1007l");
        }
        self.screen.process(&out);
        // Below the last line with text on it, or where the cursor is if
        // that is lower and at a line's start.
        let screen = self.screen.screen();
        let (row, col) = screen.cursor_position();
        let (_, cols) = screen.size();
        let last_text = screen
            .rows(0, cols.get())
            .enumerate()
            .filter(|(_, text)| !text.trim().is_empty())
            .map(|(i, _)| i as u16)
            .last();
        let fresh = col == 0 && last_text.is_none_or(|last| row > last);
        let row = last_text.map_or(row, |last| row.max(last));
        out.extend_from_slice(RESET_REGION);
        out.extend_from_slice(format!("\x1b[{};1H", row + 1).as_bytes());
        if !fresh {
            out.extend_from_slice(b"\r\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_dropped_from_the_replay_only() {
        let queries: &[&[u8]] = &[
            b"\x1b[6n",
            b"\x1b[5n",
            b"\x1b[?6n",
            b"\x1b[c",
            b"\x1b[0c",
            b"\x1b[>c",
            b"\x1b[=c",
            b"\x1b[?2004$p",
            b"\x1b[4$p",
            b"\x1b[>0q",
            b"\x1b[?u",
            b"\x1b[?4m",
            b"\x1b[14t",
            b"\x1b]10;?\x1b\\",
            b"\x1b]11;?\x07",
            b"\x1b]4;1;?\x07",
            b"\x1b]7501;?\x1b\\",
            b"\x1bP$qm\x1b\\",
            b"\x1bP+q544e\x1b\\",
            b"\x1bZ",
            b"\x05",
        ];
        for q in queries {
            let mut d = Display::new((80, 24));
            let mut text = b"a".to_vec();
            text.extend_from_slice(q);
            text.extend_from_slice(b"b");
            assert_eq!(d.show(&text, true), b"ab", "{q:?}");
            assert_eq!(d.show(&text, false), text, "{q:?}");
        }
        // Not queries: colours, cursor moves, modes, titles, cursor shape.
        let mut d = Display::new((80, 24));
        let keep =
            b"\x1b[1;31mred\x1b[0m\x1b[2;3H\x1b[?25l\x1b]0;title\x07\x1b[2 q\x1b[>4;2m\x1b[22t";
        assert_eq!(d.show(keep, true), keep);
    }

    #[test]
    fn sequences_split_across_outputs_are_held_whole() {
        let mut d = Display::new((80, 24));
        assert_eq!(d.show(b"x\x1b[", true), b"x");
        assert_eq!(d.show(b"6", true), b"");
        assert_eq!(d.show(b"ny\x1b]11", true), b"y");
        assert_eq!(d.show(b";?\x1b\\z", true), b"z");
    }

    #[test]
    fn kitty_pops_never_go_below_the_attach() {
        let mut d = Display::new((80, 24));
        // A pop with nothing pushed (its push was before the replay).
        assert_eq!(d.show(b"\x1b[<u", true), b"");
        assert_eq!(
            d.show(b"\x1b[>1u\x1b[>3u\x1b[<5u", false),
            b"\x1b[>1u\x1b[>3u\x1b[<2u"
        );
        // Pushed twice, once on each screen: each screen's own pops.
        d.show(b"\x1b[>1u\x1b[?1049h\x1b[>1u", false);
        let out = String::from_utf8(d.restore()).unwrap();
        assert!(out.starts_with("\x1b[<1u\x1b[?1049l\x1b[<2u"), "{out:?}");
        // Nothing pushed by the program: only codex-attach's own entry.
        let mut d = Display::new((80, 24));
        let out = String::from_utf8(d.restore()).unwrap();
        assert!(out.starts_with("\x1b[<1u\x1b[?1l"), "{out:?}");
    }

    #[test]
    fn the_way_out_starts_on_a_fresh_line_below_the_text() {
        // The cursor after text: a new line below it.
        let mut d = Display::new((20, 5));
        d.show(b"line one\r\nprompt> ", false);
        let out = String::from_utf8(d.restore()).unwrap();
        assert!(out.ends_with("\x1b[?6l\x1b[r\x1b[2;1H\r\n"), "{out:?}");
        // The cursor up in an inline program, text below it: below the text.
        let mut d = Display::new((20, 5));
        d.show(b"a\r\nb\r\nc\x1b[1;3H", false);
        let out = String::from_utf8(d.restore()).unwrap();
        assert!(out.ends_with("\x1b[3;1H\r\n"), "{out:?}");
        // Already at the start of an empty line below the text: stay.
        let mut d = Display::new((20, 5));
        d.show(b"a\r\n", false);
        let out = String::from_utf8(d.restore()).unwrap();
        assert!(out.ends_with("\x1b[2;1H"), "{out:?}");
        // A full-screen program: the main screen's cursor, after leaving.
        let mut d = Display::new((20, 5));
        d.show(
            b"shell$ \x1b[?1049h\x1b[2J\x1b[5;1Hstatus\x1b[?1h\x1b=",
            false,
        );
        let out = String::from_utf8(d.restore()).unwrap();
        assert!(out.starts_with("\x1b[?1049l\x1b[<1u"), "{out:?}");
        assert!(out.ends_with("\x1b[1;1H\r\n"), "{out:?}");
    }
}

//! Detach keys: parsing `ctrl-p,ctrl-q`, decoding typed bytes into key
//! events in every encoding a terminal may use for them, and spotting the
//! sequence among those events, inside a larger read, across reads and with
//! repeated keys.
//!
//! A terminal sends ctrl-\ as the byte 0x1c (legacy), as `CSI 92;5u` once a
//! program has pushed the kitty keyboard protocol, or as `CSI 27;5;92~`
//! under xterm's modifyOtherKeys. Modifiers are encoded as 1 + bits
//! (shift 1, alt 2, ctrl 4, super 8, ...; caps and num lock ignored).
//! Key releases, lone modifier keys, focus events and the terminal's
//! answers are neither part of the sequence nor break it. Bytes that turn
//! out not to be the detach sequence are passed on unchanged and in order.

/// Modifier bits (kitty's encoding minus one).
const SHIFT: u8 = 1;
const CTRL: u8 = 4;
/// Caps lock and num lock: not modifiers a user means.
const LOCKS: u8 = 64 | 128;
/// Kitty's codes for the modifier keys themselves (left shift ... right meta).
const MODIFIER_KEYS: std::ops::RangeInclusive<u32> = 57441..=57452;
/// The longest escape sequence taken for a key; longer ones pass on.
const MAX_SEQUENCE: usize = 64;

/// One key of a detach sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// Control and a character: a lower-case letter or one of `@[\]^_`.
    Ctrl(u8),
    /// A printable character typed alone.
    Char(u8),
}

/// A sequence of keys that detaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachKeys(Vec<Key>);

impl DetachKeys {
    /// Parses a comma-separated list of keys: `ctrl-X` (X a letter or one
    /// of `@\]^_`) or a single printable character.
    pub fn parse(spec: &str) -> Result<DetachKeys, String> {
        let bad = |k: &str| {
            format!("invalid detach key {k:?}: expected ctrl-X (such as ctrl-\\ or ctrl-p) or one character")
        };
        let mut keys = Vec::new();
        for key in spec.split(',') {
            let key = key.trim();
            let parsed = match key.strip_prefix("ctrl-").or_else(|| key.strip_prefix("C-")) {
                Some(rest) if rest.len() == 1 => {
                    let c = rest.as_bytes()[0].to_ascii_lowercase();
                    if c == b'[' {
                        return Err(format!(
                            "invalid detach key {key:?}: ctrl-[ is Escape, which starts the sequences terminals send for other keys"
                        ));
                    }
                    if !(c.is_ascii_lowercase() || b"@\\]^_".contains(&c)) {
                        return Err(bad(key));
                    }
                    Key::Ctrl(c)
                }
                Some(_) => return Err(bad(key)),
                None if key.len() == 1 && key.as_bytes()[0].is_ascii_graphic() => {
                    Key::Char(key.as_bytes()[0])
                }
                None => return Err(bad(key)),
            };
            keys.push(parsed);
        }
        if keys.is_empty() {
            return Err(bad(spec));
        }
        Ok(DetachKeys(keys))
    }
}

/// The bytes of keys named for `--keys`: a comma-separated list of
/// `enter`, `tab`, `esc`, `backspace`, `space`, `up`, `down`, `left`,
/// `right`, `home`, `end`, `pageup`, `pagedown`, `delete`, `ctrl-X` or a
/// single character (a comma itself is `comma`).
pub fn named(spec: &str) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    for name in spec.split(',') {
        let key: &[u8] = match name.trim().to_ascii_lowercase().as_str() {
            "enter" | "return" => b"\r",
            "tab" => b"\t",
            "esc" | "escape" => b"\x1b",
            "backspace" | "bs" => b"\x7f",
            "space" => b" ",
            "comma" => b",",
            "up" => b"\x1b[A",
            "down" => b"\x1b[B",
            "right" => b"\x1b[C",
            "left" => b"\x1b[D",
            "home" => b"\x1b[H",
            "end" => b"\x1b[F",
            "pageup" => b"\x1b[5~",
            "pagedown" => b"\x1b[6~",
            "delete" | "del" => b"\x1b[3~",
            _ => match DetachKeys::parse(name) {
                Ok(DetachKeys(k)) if k.len() == 1 => {
                    bytes.push(match k[0] {
                        Key::Ctrl(c) if c.is_ascii_lowercase() => c - b'a' + 1,
                        Key::Ctrl(c) => c - b'@',
                        Key::Char(c) => c,
                    });
                    continue;
                }
                _ => {
                    return Err(format!(
                        "unknown key {name:?}: expected enter, tab, esc, backspace, space, up, down, left, right, home, end, pageup, pagedown, delete, ctrl-X or one character"
                    ))
                }
            },
        };
        bytes.extend_from_slice(key);
    }
    Ok(bytes)
}

/// What one decoded piece of input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    /// A key press (or repeat): its code (a Unicode code point, lower case
    /// for letters), the shifted character when the terminal said, and the
    /// modifier bits.
    Press {
        code: u32,
        shifted: Option<u32>,
        mods: u8,
    },
    /// A key that cannot be a detach key (arrows, function keys, Escape).
    Other,
    /// Not a key press: a release, a lone modifier key, a focus event, an
    /// answer of the terminal. Held along with a partial match.
    Neutral,
}

impl Event {
    fn matches(self, key: Key) -> bool {
        let Event::Press {
            code,
            shifted,
            mods,
        } = self
        else {
            return false;
        };
        let mods = mods & !LOCKS;
        match key {
            Key::Ctrl(c) => mods == CTRL && code == u32::from(c),
            Key::Char(c) => {
                let c = u32::from(c);
                (mods == 0 && code == c)
                    || (mods == SHIFT
                        && (shifted == Some(c)
                            || (char::from_u32(c).is_some_and(|c| c.is_ascii_uppercase())
                                && code == c + 32)))
            }
        }
    }
}

/// Decodes the event at the start of `input`: the event and the bytes it
/// takes, or `None` when `input` ends inside an escape sequence (unless
/// `force`, which takes what is there).
fn decode(input: &[u8], force: bool) -> Option<(Event, usize)> {
    let b = input[0];
    if b != 0x1b {
        return Some((legacy(b), 1));
    }
    let Some(&next) = input.get(1) else {
        return force.then_some((Event::Other, 1));
    };
    match next {
        b'[' => csi(input, force),
        // SS3: F1-F4 and the arrows in application cursor mode.
        b'O' => match input.get(2) {
            Some(_) => Some((Event::Other, 3)),
            None => force.then_some((Event::Other, 2)),
        },
        // Alt and a key.
        0x20..=0x7e => Some((Event::Other, 2)),
        _ => Some((Event::Other, 1)),
    }
}

/// A legacy byte as a key.
fn legacy(b: u8) -> Event {
    let press = |code: u8, mods| Event::Press {
        code: u32::from(code),
        shifted: None,
        mods,
    };
    match b {
        0x00 => press(b'@', CTRL),
        0x01..=0x1a => press(b'a' + b - 1, CTRL),
        0x1c..=0x1f => press(b + 0x40, CTRL),
        b'A'..=b'Z' => Event::Press {
            code: u32::from(b + 32),
            shifted: Some(u32::from(b)),
            mods: SHIFT,
        },
        0x20..=0x7e => press(b, 0),
        _ => Event::Other,
    }
}

/// A CSI sequence at the start of `input`.
fn csi(input: &[u8], force: bool) -> Option<(Event, usize)> {
    let body = &input[2..input.len().min(2 + MAX_SEQUENCE)];
    let end = match body.iter().position(|b| !(0x20..=0x3f).contains(b)) {
        Some(i) if (0x40..=0x7e).contains(&body[i]) => i + 2,
        // A broken sequence: what came of it passes on.
        Some(i) => return Some((Event::Other, i + 2)),
        None if body.len() == MAX_SEQUENCE => {
            return Some((Event::Other, input.len().min(2 + MAX_SEQUENCE)))
        }
        None => return force.then_some((Event::Other, input.len())),
    };
    let params = &input[2..end];
    let fin = input[end];
    // X10 mouse: three raw bytes follow `CSI M`.
    if fin == b'M' && params.is_empty() {
        return match input.len() >= end + 4 {
            true => Some((Event::Neutral, end + 4)),
            false if force => Some((Event::Neutral, input.len())),
            false => None,
        };
    }
    let event = match fin {
        b'u' if params.first().is_some_and(u8::is_ascii_digit) => kitty(params),
        b'~' if params.starts_with(b"27;") => modify_other_keys(params),
        // Arrows, Home, End, F1-F4, function keys, back-tab.
        b'A'..=b'H' | b'P'..=b'S' | b'Z' | b'~' => Event::Other,
        // Focus, answers (cursor position, attributes, modes), mouse.
        _ => Event::Neutral,
    };
    Some((event, end + 1))
}

/// Splits `a:b;c:d` into numbers (empty fields: `None`).
fn fields(params: &[u8]) -> Vec<Vec<Option<u32>>> {
    params
        .split(|&b| b == b';')
        .map(|f| {
            f.split(|&b| b == b':')
                .map(|n| std::str::from_utf8(n).ok()?.parse().ok())
                .collect()
        })
        .collect()
}

/// Kitty's `CSI code[:shifted[:base]] ; mods[:event] [; text] u`.
fn kitty(params: &[u8]) -> Event {
    let f = fields(params);
    let code = f[0][0].unwrap_or(0);
    let shifted = f[0].get(1).copied().flatten();
    let mods = f.get(1).and_then(|m| m[0]).unwrap_or(1);
    let kind = f
        .get(1)
        .and_then(|m| m.get(1).copied().flatten())
        .unwrap_or(1);
    if kind == 3 || MODIFIER_KEYS.contains(&code) {
        return Event::Neutral;
    }
    press(code, shifted, mods)
}

/// xterm's `CSI 27 ; mods ; code ~`.
fn modify_other_keys(params: &[u8]) -> Event {
    let f = fields(params);
    let mods = f.get(1).and_then(|m| m[0]).unwrap_or(1);
    match f.get(2).and_then(|c| c[0]) {
        Some(code) => press(code, None, mods),
        None => Event::Other,
    }
}

fn press(code: u32, shifted: Option<u32>, mods: u32) -> Event {
    let mods = mods.saturating_sub(1).min(255) as u8;
    // Some terminals send ctrl-shift-letter with the upper-case code.
    let code = match char::from_u32(code) {
        Some(c) if c.is_ascii_uppercase() => code + 32,
        _ => code,
    };
    Event::Press {
        code,
        shifted,
        mods,
    }
}

/// What [`Detector::feed`] found.
#[derive(Debug, PartialEq, Eq)]
pub struct Fed {
    /// Bytes to pass on to the session, in order.
    pub pass: Vec<u8>,
    /// Whether the detach sequence (or another key that detaches) came;
    /// whatever was typed after it is dropped.
    pub detach: bool,
}

/// Watches typed bytes for the detach sequence.
#[derive(Debug)]
pub struct Detector {
    keys: Vec<Key>,
    /// Single keys that detach too (ctrl-D and ctrl-C when watching).
    also: Vec<Key>,
    /// The start of an escape sequence not yet complete.
    partial: Vec<u8>,
    /// Events held back as a partial match: whether each is a key press,
    /// and its bytes.
    held: Vec<(bool, Vec<u8>)>,
}

impl Detector {
    /// A detector of `keys`, and of each key of `also` alone.
    pub fn new(keys: &DetachKeys, also: &[Key]) -> Detector {
        Detector {
            keys: keys.0.clone(),
            also: also.to_vec(),
            partial: Vec::new(),
            held: Vec::new(),
        }
    }

    /// Takes typed bytes.
    pub fn feed(&mut self, input: &[u8]) -> Fed {
        let mut data = std::mem::take(&mut self.partial);
        data.extend_from_slice(input);
        self.take(&data, false)
    }

    /// When an escape sequence has begun: how long to wait for its end
    /// before [`Detector::flush`] takes it as it is. A lone Escape is
    /// most likely the Escape key: briefly; a sequence under way (`ESC [`
    /// and more) is a key whose bytes came in two reads: longer.
    pub fn waiting(&self) -> Option<std::time::Duration> {
        match self.partial.len() {
            0 => None,
            1 => Some(std::time::Duration::from_millis(30)),
            _ => Some(std::time::Duration::from_secs(1)),
        }
    }

    /// Takes the unfinished escape sequence as it is (a lone Escape key).
    pub fn flush(&mut self) -> Fed {
        let data = std::mem::take(&mut self.partial);
        self.take(&data, true)
    }

    fn take(&mut self, data: &[u8], force: bool) -> Fed {
        let mut pass = Vec::with_capacity(data.len());
        let mut at = 0;
        while at < data.len() {
            let Some((event, len)) = decode(&data[at..], force) else {
                self.partial = data[at..].to_vec();
                break;
            };
            let bytes = &data[at..at + len];
            at += len;
            if self.also.iter().any(|&k| event.matches(k)) {
                return Fed { pass, detach: true };
            }
            if event == Event::Neutral {
                match self.held.is_empty() {
                    true => pass.extend_from_slice(bytes),
                    false => self.held.push((false, bytes.to_vec())),
                }
                continue;
            }
            self.held.push((true, bytes.to_vec()));
            let held_keys = |held: &[(bool, Vec<u8>)]| -> Vec<Event> {
                held.iter()
                    .filter(|(key, _)| *key)
                    .map(|(_, b)| decode(b, true).map_or(Event::Other, |(e, _)| e))
                    .collect()
            };
            // Let go of held events from the front until what is held is
            // again the start of the sequence (`a,a,d` typed `a a a d`).
            loop {
                let events = held_keys(&self.held);
                let prefix = events.len() <= self.keys.len()
                    && events.iter().zip(&self.keys).all(|(e, &k)| e.matches(k));
                if prefix {
                    if events.len() == self.keys.len() {
                        self.held.clear();
                        return Fed { pass, detach: true };
                    }
                    break;
                }
                let (_, bytes) = self.held.remove(0);
                pass.extend_from_slice(&bytes);
                while self.held.first().is_some_and(|(key, _)| !key) {
                    pass.extend_from_slice(&self.held.remove(0).1);
                }
            }
        }
        Fed {
            pass,
            detach: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(s: &str) -> DetachKeys {
        DetachKeys::parse(s).unwrap()
    }

    fn fed(pass: &[u8], detach: bool) -> Fed {
        Fed {
            pass: pass.to_vec(),
            detach,
        }
    }

    #[test]
    fn parses_forms() {
        assert_eq!(keys("ctrl-\\"), DetachKeys(vec![Key::Ctrl(b'\\')]));
        assert_eq!(
            keys("ctrl-p,ctrl-Q"),
            DetachKeys(vec![Key::Ctrl(b'p'), Key::Ctrl(b'q')])
        );
        assert_eq!(
            keys("ctrl-a,d"),
            DetachKeys(vec![Key::Ctrl(b'a'), Key::Char(b'd')])
        );
        for bad in ["", "ctrl-", "ctrl-ab", "alt-x", "ctrl-1", "  ", "ctrl-["] {
            assert!(DetachKeys::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn spots_keys_inside_and_across_reads() {
        let mut d = Detector::new(&keys("ctrl-\\"), &[]);
        assert_eq!(d.feed(b"ls\x1cpwd"), fed(b"ls", true));
        let mut d = Detector::new(&keys("ctrl-p,ctrl-q"), &[]);
        assert_eq!(d.feed(b"ab\x10"), fed(b"ab", false));
        assert_eq!(d.feed(b"\x11"), fed(b"", true));
        // A broken-off prefix is typing, passed on in order.
        let mut d = Detector::new(&keys("ctrl-p,ctrl-q"), &[]);
        assert_eq!(d.feed(b"\x10x"), fed(b"\x10x", false));
        assert_eq!(d.feed(b"\x10\x10\x11"), fed(b"\x10", true));
    }

    #[test]
    fn named_keys() {
        assert_eq!(named("enter").unwrap(), b"\r");
        assert_eq!(named("ctrl-c,up, x ,comma").unwrap(), b"\x03\x1b[Ax,");
        assert_eq!(named("ctrl-\\").unwrap(), b"\x1c");
        assert!(named("hyper").is_err());
        assert!(named("").is_err());
    }

    #[test]
    fn every_encoding_of_ctrl_backslash() {
        for typed in [
            &b"\x1c"[..],
            b"\x1b[92;5u",
            b"\x1b[92;5:1u",
            b"\x1b[92;5:2u",
            b"\x1b[92:124;5u",
            b"\x1b[92;69u", // caps lock on
            b"\x1b[27;5;92~",
        ] {
            let mut d = Detector::new(&keys("ctrl-\\"), &[]);
            let mut input = b"x".to_vec();
            input.extend_from_slice(typed);
            assert_eq!(d.feed(&input), fed(b"x", true), "{typed:?}");
        }
        // Not ctrl-\: alt-ctrl-\, a release, plain backslash, another key.
        for typed in [
            &b"\x1b[92;7u"[..],
            b"\x1b[92;5:3u",
            b"\x1b[92u",
            b"\\",
            b"\x1b[27;5;93~",
            b"\x1b[1;5A",
        ] {
            let mut d = Detector::new(&keys("ctrl-\\"), &[]);
            assert_eq!(d.feed(typed), fed(typed, false), "{typed:?}");
        }
    }

    #[test]
    fn escape_sequences_split_across_reads() {
        let mut d = Detector::new(&keys("ctrl-\\"), &[]);
        assert_eq!(d.feed(b"a\x1b"), fed(b"a", false));
        assert!(d.waiting().is_some());
        assert_eq!(d.feed(b"[92"), fed(b"", false));
        assert_eq!(d.feed(b";5u"), fed(b"", true));
        // A lone Escape is passed on once it is clear that nothing follows.
        let mut d = Detector::new(&keys("ctrl-\\"), &[]);
        assert_eq!(d.feed(b"\x1b"), fed(b"", false));
        assert_eq!(d.flush(), fed(b"\x1b", false));
        assert!(d.waiting().is_none());
        // Other sequences pass whole and in order.
        assert_eq!(
            d.feed(b"\x1b[A\x1bOB\x1bx"),
            fed(b"\x1b[A\x1bOB\x1bx", false)
        );
    }

    #[test]
    fn repeated_keys_and_interleaved_events() {
        let mut d = Detector::new(&keys("ctrl-a,ctrl-a,d"), &[]);
        assert_eq!(d.feed(b"\x01\x01\x01d"), fed(b"\x01", true));
        let mut d = Detector::new(&keys("ctrl-a,ctrl-a,d"), &[]);
        assert_eq!(d.feed(b"\x01\x01"), fed(b"", false));
        assert_eq!(d.feed(b"x"), fed(b"\x01\x01x", false));
        // Kitty: presses, releases and the ctrl key itself, then d.
        let mut d = Detector::new(&keys("ctrl-a,d"), &[]);
        let typed = b"\x1b[57442;5u\x1b[97;5u\x1b[97;5:3u\x1b[57442;1:3u\x1b[100u";
        assert_eq!(d.feed(typed), fed(b"\x1b[57442;5u", true));
        // A focus event in between neither counts nor breaks the match.
        let mut d = Detector::new(&keys("ctrl-p,ctrl-q"), &[]);
        assert_eq!(d.feed(b"\x10\x1b[I\x11"), fed(b"", true));
        let mut d = Detector::new(&keys("ctrl-p,ctrl-q"), &[]);
        assert_eq!(d.feed(b"\x10\x1b[Iz"), fed(b"\x10\x1b[Iz", false));
    }

    #[test]
    fn characters_and_extra_keys() {
        let mut d = Detector::new(&keys("ctrl-a,D"), &[]);
        assert_eq!(d.feed(b"\x01d"), fed(b"\x01d", false));
        assert_eq!(d.feed(b"\x1b[97;5u\x1b[100;2u"), fed(b"", true));
        let mut d = Detector::new(&keys("ctrl-\\"), &[Key::Ctrl(b'd'), Key::Ctrl(b'c')]);
        assert_eq!(d.feed(b"ab\x04cd"), fed(b"ab", true));
        let mut d = Detector::new(&keys("ctrl-\\"), &[Key::Ctrl(b'd')]);
        assert_eq!(d.feed(b"\x1b[100;5u"), fed(b"", true));
    }
}

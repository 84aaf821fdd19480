//! Printing lines: stdout lines to stdout and stderr lines to stderr (each
//! flushed before the other is written, so `2>&1` keeps the order), or
//! everything as JSON lines on stdout; with an `ID | ` prefix when several
//! sessions are shown, and the read time with `--timestamps`.

use std::io::{self, Write};

use shared::layout::Stream;

use shared::output::{Gap, Line};

use shared::render::render;

/// Colours for session prefixes on a terminal, in turn.
const COLOURS: [&str; 6] = ["36", "33", "35", "32", "34", "31"];

/// How lines are printed.
pub struct Printer {
    /// One JSON object per line instead of the raw bytes.
    pub json: bool,
    /// Prefix the read time.
    pub timestamps: bool,
    /// Prefix the session id (several sessions).
    pub prefix: bool,
    /// Colour the prefix.
    pub colour: bool,
    /// Per session shown: whether it is an exec session, whose stdout is
    /// codex's event stream.
    pub exec: Vec<bool>,
    /// Print exec sessions' events as they are.
    pub raw: bool,
    /// The host the sessions are on, when they are named `ID@DEST` (a
    /// codex-tail of several hosts asked for it).
    pub host: Option<String>,
    out: io::BufWriter<io::Stdout>,
    err: io::BufWriter<io::Stderr>,
    last: Option<Stream>,
    /// Per stream: in the middle of a line printed in pieces.
    mid: [bool; 2],
}

impl Printer {
    /// A printer with the given choices.
    pub fn new(json: bool, timestamps: bool, prefix: bool, colour: bool) -> Printer {
        Printer {
            json,
            timestamps,
            prefix,
            colour,
            exec: Vec::new(),
            raw: false,
            host: None,
            out: io::BufWriter::with_capacity(64 * 1024, io::stdout()),
            err: io::BufWriter::with_capacity(64 * 1024, io::stderr()),
            last: None,
            mid: [false; 2],
        }
    }

    /// Prints one line of session `id` (the `nth` session shown).
    pub fn line(&mut self, id: &str, nth: usize, line: &Line) -> io::Result<()> {
        let mut buf = Vec::with_capacity(line.text.len() + 64);
        if let (true, Some(gap)) = (self.json, line.gap) {
            // A mark, not a line: `line` null, and what is missing.
            self.json_id(&mut buf, id);
            let (key, n) = match gap {
                Gap::Dropped(n) => ("dropped", n),
                Gap::Missed(n) => ("missed", n),
            };
            let time = line
                .time
                .map_or("null".into(), |t| format!("\"{}\"", t.to_rfc3339_millis()));
            let rest = format!(
                ",\"stream\":\"{}\",\"time\":{time},\"line\":null,\"{key}\":{n}}}\n",
                line.stream.as_str()
            );
            buf.extend_from_slice(rest.as_bytes());
            return self.write(Stream::Stdout, &buf);
        }
        if self.json {
            self.json_id(&mut buf, id);
            buf.extend_from_slice(b",\"stream\":\"");
            buf.extend_from_slice(line.stream.as_str().as_bytes());
            buf.extend_from_slice(b"\",\"time\":");
            match line.time {
                Some(t) => json_string(&mut buf, t.to_rfc3339_millis().as_bytes()),
                None => buf.extend_from_slice(b"null"),
            }
            buf.extend_from_slice(b",\"line\":");
            json_string(&mut buf, &line.text);
            if self.is_events(nth, line.stream) {
                // The line is the event's JSON already: embed it as it is.
                buf.extend_from_slice(b",\"event\":");
                // Bytes that are not UTF-8 inside its strings become
                // `\udcXX`, as in `line`: the output stays valid UTF-8.
                match shared::bytes::json_text(&line.text) {
                    Some(event) => buf.extend_from_slice(&event),
                    None => buf.extend_from_slice(b"null"),
                }
            }
            buf.extend_from_slice(b"}\n");
            return self.write(Stream::Stdout, &buf);
        }
        for shown in self.display(nth, line) {
            self.plain(id, nth, &shown)?;
        }
        Ok(())
    }

    /// Starts a JSON object: `{"id":ID` and `,"host":DEST` when named.
    fn json_id(&self, buf: &mut Vec<u8>, id: &str) {
        buf.extend_from_slice(b"{\"id\":");
        json_string(buf, id.as_bytes());
        if let Some(host) = &self.host {
            buf.extend_from_slice(b",\"host\":");
            json_string(buf, host.as_bytes());
        }
    }

    /// How session `id` is named in prefixes and messages: `ID`, or
    /// `ID@DEST`.
    pub fn label(&self, id: &str) -> String {
        match &self.host {
            Some(h) => format!("{id}@{h}"),
            None => id.to_string(),
        }
    }

    /// Whether the `nth` session's stdout is shown rendered for people
    /// (an exec session, without `--raw` or `--json`).
    pub fn renders(&self, nth: usize) -> bool {
        !self.json && !self.raw && self.exec.get(nth).copied().unwrap_or(false)
    }

    /// The lines `line` of the `nth` session shows as: for an exec session
    /// rendered for people, its events rendered and everything the agent
    /// wrote escaped, never interpreted by the terminal (lines that are not
    /// events included); else the line itself, bytes as written.
    pub fn display(&self, nth: usize, line: &Line) -> Vec<Line> {
        if !(self.renders(nth) && line.stream == Stream::Stdout) || line.gap.is_some() {
            return vec![line.clone()];
        }
        let rendered: Vec<String> = match render(&line.text) {
            Some(rendered) => rendered.iter().map(|t| ::cli::text::lines(t)).collect(),
            None => vec![::cli::text::lines_bytes(&line.text)],
        };
        rendered
            .into_iter()
            .map(|text| Line {
                text: text.into_bytes(),
                ..line.clone()
            })
            .collect()
    }

    /// Prints a line that is already in its shown form (see [`display`]).
    ///
    /// [`display`]: Printer::display
    pub fn shown(&mut self, id: &str, nth: usize, line: &Line) -> io::Result<()> {
        if self.json {
            // Never rendered: the line as it is, in JSON.
            return self.line(id, nth, line);
        }
        self.plain(id, nth, line)
    }

    /// Whether `stream` of the `nth` session is codex's event stream.
    fn is_events(&self, nth: usize, stream: Stream) -> bool {
        stream == Stream::Stdout && self.exec.get(nth).copied().unwrap_or(false)
    }

    /// Prints one line as it is, with the prefix and time asked for.
    fn plain(&mut self, id: &str, nth: usize, line: &Line) -> io::Result<()> {
        match line.gap {
            // Bytes lost at this point: a mark in their place, as a line.
            Some(gap @ Gap::Dropped(_)) => {
                let text = gap.text(line.stream).into_bytes();
                let mark = Line::new(line.stream, text, line.time, false);
                return self.plain(id, nth, &mark);
            }
            // This reader's own trouble: said on stderr.
            Some(gap @ Gap::Missed(_)) => {
                let msg = format!(
                    "codex-tail: {}: {}\n",
                    self.label(id),
                    gap.text(line.stream)
                );
                return self.write(Stream::Stderr, msg.as_bytes());
            }
            None => {}
        }
        let mut buf = Vec::with_capacity(line.text.len() + 64);
        let k = line.stream.index();
        if std::mem::replace(&mut self.mid[k], line.more) {
            // The rest of a line begun in an earlier piece.
            buf.extend_from_slice(&line.text);
            if !line.more {
                buf.push(b'\n');
            }
            return self.write(line.stream, &buf);
        }
        if self.prefix {
            let id = self.label(id);
            if self.colour {
                let c = COLOURS[nth % COLOURS.len()];
                buf.extend_from_slice(format!("\x1b[{c}m{id}\x1b[39m | ").as_bytes());
            } else {
                buf.extend_from_slice(format!("{id} | ").as_bytes());
            }
        }
        if self.timestamps {
            let t = line
                .time
                .map_or_else(|| "-".to_string(), |t| t.to_rfc3339_millis());
            buf.extend_from_slice(t.as_bytes());
            buf.push(b' ');
        }
        buf.extend_from_slice(&line.text);
        if !line.more {
            buf.push(b'\n');
        }
        self.write(line.stream, &buf)
    }

    /// Prints raw bytes of `stream` (`-c`).
    pub fn raw(&mut self, stream: Stream, bytes: &[u8]) -> io::Result<()> {
        self.write(stream, bytes)
    }

    fn write(&mut self, stream: Stream, bytes: &[u8]) -> io::Result<()> {
        if self.last.is_some_and(|l| l != stream) {
            self.flush()?;
        }
        self.last = Some(stream);
        match stream {
            Stream::Stdout => self.out.write_all(bytes),
            Stream::Stderr => self.err.write_all(bytes),
        }
    }

    /// Flushes both streams.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.err.flush()
    }
}

/// Appends `bytes` as a JSON string, by the convention of
/// [`shared::bytes`] (bytes that are not UTF-8 as `\udcXX`).
pub fn json_string(buf: &mut Vec<u8>, bytes: &[u8]) {
    shared::bytes::write_json_string(buf, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn js(b: &[u8]) -> String {
        let mut v = Vec::new();
        json_string(&mut v, b);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn escapes_like_json_and_keeps_bad_bytes() {
        assert_eq!(js(b"a\"b\\c\td\r"), r#""a\"b\\c\td\r""#);
        assert_eq!(js("héllo".as_bytes()), "\"héllo\"");
        assert_eq!(js(b"\x1b[1m"), r#""\u001b[1m""#);
        assert_eq!(js(b"ok\xff\xfe!"), r#""ok\udcff\udcfe!""#);
        // What the escapes decode to is valid JSON for a standard parser.
        let v: serde_json::Value = serde_json::from_str(&js(b"x\x01y")).unwrap();
        assert_eq!(v, "x\u{1}y");
    }
}

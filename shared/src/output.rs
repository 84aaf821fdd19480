//! One session's output as lines, in the order they arrived (what
//! codex-tail prints and codex-attach replays).
//!
//! A line belongs to the index entry holding its end (its newline, or the
//! end of the stream); lines are ordered and timed by that entry. The last
//! N lines are found by walking the index backward from its end, reading
//! only the chunks that hold them, so the cost does not grow with the log.
//! Later output is taken in by walking forward from where the walk stopped.

use std::io;
use std::path::PathBuf;

use crate::index::{EntryKind, Reader};
use crate::layout::{self, Stream};
use crate::logs::StreamLog;
use crate::{SessionId, Timestamp};

/// Which streams are wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// stdout only.
    Out,
    /// stderr only.
    Err,
    /// Both, merged in arrival order.
    All,
}

impl Which {
    /// Whether lines of `stream` are wanted.
    pub fn wants(self, stream: Stream) -> bool {
        matches!(
            (self, stream),
            (Which::All, _) | (Which::Out, Stream::Stdout) | (Which::Err, Stream::Stderr)
        )
    }
}

/// One line of output, without its newline, or a piece of one (see
/// [`Source::pieces`]).
#[derive(Debug, Clone)]
pub struct Line {
    /// Its stream.
    pub stream: Stream,
    /// Its bytes, untouched, without the final `\n`.
    pub text: Vec<u8>,
    /// When the supervisor read its end (unknown without an index); for a
    /// piece, when it read the piece's last bytes.
    pub time: Option<Timestamp>,
    /// Whether this is a piece of a longer line whose rest comes in later
    /// lines of the same stream (so no newline follows it).
    pub more: bool,
    /// Not output but a mark: bytes of `stream` missing at this point
    /// (`text` is then empty).
    pub gap: Option<Gap>,
}

/// Bytes of a stream missing from what a reader hands out, at the point
/// where they are missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gap {
    /// The supervisor could not log them (a full disk, a file size
    /// limit): the index says so at the point of loss.
    Dropped(u64),
    /// A follower fell behind rotation (`--max-log-size`): they were
    /// rotated away before it read them.
    Missed(u64),
}

impl Gap {
    /// The mark as people read it, for bytes of `stream`.
    pub fn text(&self, stream: Stream) -> String {
        match self {
            Gap::Dropped(n) => format!(
                "[{n} bytes of {} lost here: they could not be logged]",
                stream.as_str()
            ),
            Gap::Missed(n) => format!(
                "missed {n} bytes of {}: rotated away (--max-log-size) before they were read",
                stream.as_str()
            ),
        }
    }
}

impl Line {
    /// A line of output (or a piece of one).
    pub fn new(stream: Stream, text: Vec<u8>, time: Option<Timestamp>, more: bool) -> Line {
        Line {
            stream,
            text,
            time,
            more,
            gap: None,
        }
    }

    /// A mark of bytes of `stream` missing at this point.
    pub fn gap(stream: Stream, gap: Gap, time: Option<Timestamp>) -> Line {
        Line {
            stream,
            text: Vec::new(),
            time,
            more: false,
            gap: Some(gap),
        }
    }
}

/// The size of the pieces a long line is handed out in (see
/// [`Source::pieces`]).
pub const PIECE: u64 = 64 * 1024;

/// Which lines are wanted.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// The streams.
    pub which: Which,
    /// Only lines read at or after this time.
    pub since: Option<Timestamp>,
    /// Only lines read at or before this time.
    pub until: Option<Timestamp>,
    /// Only output in the first this many index entries (what an attach
    /// client finds in the logs when it joins).
    pub upto: Option<usize>,
}

impl Window {
    fn admits(&self, time: Timestamp) -> bool {
        self.since.is_none_or(|s| time >= s) && self.until.is_none_or(|u| time <= u)
    }
}

const STREAMS: [Stream; 2] = [Stream::Stdout, Stream::Stderr];

/// How much of a chunk is read at a time when walking backward.
const BACKWARD_BLOCK: u64 = 64 * 1024;

/// The end of a line found by the backward walk (or a mark of bytes
/// dropped there).
struct End {
    stream: Stream,
    /// Stream offset of its `\n`, or of the end of the stream, or of the
    /// point where bytes were dropped.
    at: u64,
    newline: bool,
    time: Timestamp,
    /// The index entry it was found in.
    entry: usize,
    /// Bytes dropped at `at`: a mark, not a line.
    dropped: Option<u64>,
}

/// A session whose output is being read.
pub struct Source {
    /// The session id.
    pub id: SessionId,
    /// The session directory.
    pub dir: PathBuf,
    index: Option<Reader>,
    logs: [StreamLog; 2],
    /// The next index entry to take in.
    pos: usize,
    /// The start of a line whose end has not arrived yet, per stream.
    pending: [Vec<u8>; 2],
    /// The index entry and time of each pending line's last bytes.
    pending_at: [(usize, Timestamp); 2],
    /// Per stream: pieces of the line in progress were handed out.
    open: [bool; 2],
    /// Per stream: the stream offset up to which its bytes were taken in
    /// (none before the first), so that bytes are never taken twice and
    /// bytes skipped are told.
    next: [Option<u64>; 2],
    /// Hand out lines longer than [`PIECE`] in pieces (a [`Line`] with
    /// `more` set) rather than whole, so that memory stays bounded by the
    /// piece, not by the longest line. Only for readers that print lines
    /// as bytes; lines are whole when a time window is given.
    pub pieces: bool,
}

impl Source {
    /// Opens the output of session `id` in `dir`.
    pub fn open(id: SessionId, dir: PathBuf) -> crate::Result<Source> {
        let index = match Reader::open(&dir.join(layout::INDEX)) {
            Ok(ix) => Some(ix),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        let logs = [
            StreamLog::open(&dir, Stream::Stdout, index.as_ref())?,
            StreamLog::open(&dir, Stream::Stderr, index.as_ref())?,
        ];
        Ok(Source {
            id,
            dir,
            index,
            logs,
            pos: 0,
            pending: [Vec::new(), Vec::new()],
            pending_at: [(0, Timestamp::default()); 2],
            open: [false; 2],
            next: [None; 2],
            pieces: false,
        })
    }

    /// The last `n` lines in `w`, oldest first. With `follow`, a last line
    /// still missing its newline is kept back until it is complete.
    pub fn last_lines(&mut self, n: usize, w: &Window, follow: bool) -> io::Result<Vec<Line>> {
        let mut lines = Vec::new();
        self.last_lines_each(n, w, follow, &mut |l| lines.push(l))?;
        Ok(lines)
    }

    /// [`Source::last_lines`], handing each line to `emit` as it is read
    /// (in pieces when [`Source::pieces`] is set).
    pub fn last_lines_each(
        &mut self,
        n: usize,
        w: &Window,
        follow: bool,
        emit: &mut dyn FnMut(Line),
    ) -> io::Result<()> {
        let Some(ix) = &self.index else {
            self.without_index(Some(n), w)?.into_iter().for_each(emit);
            return Ok(());
        };
        let indexed = w.upto.map_or(ix.len(), |u| u.min(ix.len()));
        let hi = match w.until {
            Some(u) => (ix.first()..indexed)
                .rev()
                .find(|&i| ix.get(i).is_some_and(|e| e.time <= u))
                .map_or(ix.first(), |i| i + 1),
            None => indexed,
        };
        let mut ends: Vec<End> = Vec::new();
        // Per stream: where its output ends at `hi`, once seen.
        let mut stream_end: [Option<u64>; 2] = [None, None];
        // Per stream: its last event was a loss (no partial line after it).
        let mut cut_last = [false; 2];
        let mut i = hi;
        while i > ix.first() && ends.len() < n {
            i -= 1;
            let Some(e) = ix.get(i) else { continue };
            if e.kind == EntryKind::Rotate || !w.which.wants(e.stream) {
                continue;
            }
            if w.since.is_some_and(|s| e.time < s) {
                break;
            }
            let k = e.stream.index();
            if e.kind == EntryKind::Dropped {
                // One mark for a run of losses at one point (the index
                // could be written between them).
                let mut len = u64::from(e.len);
                while let Some(d) = i.checked_sub(1).and_then(|j| ix.get(j)).filter(|d| {
                    d.kind == EntryKind::Dropped && d.stream == e.stream && d.offset == e.offset
                }) {
                    len += u64::from(d.len);
                    i -= 1;
                }
                // A mark where the bytes were lost; the text before it on
                // its line is a line of its own.
                if stream_end[k].is_none() {
                    stream_end[k] = Some(e.offset);
                    cut_last[k] = true;
                }
                ends.push(End {
                    stream: e.stream,
                    at: e.offset,
                    newline: false,
                    time: e.time,
                    entry: i,
                    dropped: Some(len),
                });
                let before = e
                    .offset
                    .checked_sub(1)
                    .filter(|&b| b >= self.logs[k].first());
                let cut = match before {
                    Some(b) => self.logs[k].read_range(b, e.offset)? != b"\n",
                    None => false,
                };
                if cut && ends.len() < n {
                    ends.push(End {
                        stream: e.stream,
                        at: e.offset,
                        newline: false,
                        time: e.time,
                        entry: i,
                        dropped: None,
                    });
                }
                continue;
            }
            // The chunk is read backward a block at a time: an entry can
            // stand for megabytes of bulk output, of which only the end
            // is wanted.
            let mut hi_off = e.offset + u64::from(e.len);
            while hi_off > e.offset && ends.len() < n {
                let lo_off = hi_off.saturating_sub(BACKWARD_BLOCK).max(e.offset);
                let block = self.logs[k].read_range(lo_off, hi_off)?;
                if block.len() as u64 != hi_off - lo_off {
                    // Rotated away: nothing further back is there either.
                    break;
                }
                if stream_end[k].is_none() {
                    stream_end[k] = Some(hi_off);
                    if block.last() != Some(&b'\n') && !follow {
                        ends.push(End {
                            stream: e.stream,
                            at: hi_off,
                            newline: false,
                            time: e.time,
                            entry: i,
                            dropped: None,
                        });
                    }
                }
                for p in block
                    .iter()
                    .enumerate()
                    .rev()
                    .filter(|(_, &b)| b == b'\n')
                    .map(|(p, _)| p)
                {
                    if ends.len() >= n {
                        break;
                    }
                    ends.push(End {
                        stream: e.stream,
                        at: lo_off + p as u64,
                        newline: true,
                        time: e.time,
                        entry: i,
                        dropped: None,
                    });
                }
                hi_off = lo_off;
            }
        }
        ends.reverse();

        let mut next_start: [Option<u64>; 2] = [None, None];
        for end in &ends {
            let k = end.stream.index();
            if let Some(len) = end.dropped {
                next_start[k] = Some(end.at);
                let gap = Gap::Dropped(len);
                emit(Line::gap(end.stream, gap, Some(end.time)));
                continue;
            }
            let start = match next_start[k] {
                Some(s) => s,
                None => {
                    let start = self.logs[k].line_start(end.at)?;
                    // A line does not reach back past bytes lost before it.
                    self.drop_before(end.stream, end.entry, start, end.at)
                        .unwrap_or(start)
                }
            };
            next_start[k] = Some(end.at + u64::from(end.newline));
            let log = &self.logs[k];
            let open = &mut self.open[k];
            let time = Some(end.time);
            let rest = emit_pieces(
                log,
                self.pieces,
                open,
                end.stream,
                (start, end.at),
                time,
                emit,
            )?;
            emit(Line::new(end.stream, rest, Some(end.time), false));
            self.open[k] = false;
        }
        if follow {
            for k in 0..2 {
                if cut_last[k] {
                    // The line in progress starts after the loss.
                    self.next[k] = stream_end[k];
                }
            }
        }
        self.pos = hi;
        if follow {
            self.keep_partial_lines(hi, stream_end, cut_last, w, emit)?;
        }
        Ok(())
    }

    /// The offset of the last loss of `stream`'s bytes in `start..=at`,
    /// searching the index backward from entry `entry` (exclusive) to the
    /// chunk holding `start`.
    fn drop_before(&self, stream: Stream, entry: usize, start: u64, at: u64) -> Option<u64> {
        let ix = self.index.as_ref()?;
        for i in (ix.first()..entry).rev() {
            let Some(e) = ix.get(i).filter(|e| e.stream == stream) else {
                continue;
            };
            match e.kind {
                EntryKind::Dropped if e.offset > start && e.offset <= at => return Some(e.offset),
                EntryKind::Data if e.offset <= start => return None,
                _ => {}
            }
        }
        None
    }

    /// Every line in `w` from line `first` (1-based) on, each handed to
    /// `emit` as it is read (in pieces when [`Source::pieces`] is set), so
    /// that memory does not grow with the log. With `follow`, a last line
    /// missing its newline is kept back; without, it comes last.
    pub fn lines_from(
        &mut self,
        first: usize,
        w: &Window,
        follow: bool,
        emit: &mut dyn FnMut(Line),
    ) -> io::Result<()> {
        let skip = first.saturating_sub(1);
        if self.index.is_none() {
            let all = self.without_index(None, w)?;
            all.into_iter().skip(skip).for_each(emit);
            return Ok(());
        }
        // Lines before `first` are counted, not handed out.
        let mut seen = 0usize;
        let mut from_first = |line: Line| {
            let wanted = seen >= skip;
            if !line.more {
                seen += 1;
            }
            if wanted {
                emit(line);
            }
        };
        if follow {
            if self.index.as_ref().is_some_and(|ix| ix.first() == 0) {
                // Following from the start: every byte is expected, so a
                // byte rotated away unread is told.
                self.next = [Some(0); 2];
            }
            return self.advance_seq(w, [None, None], &mut |_, l| from_first(l));
        }
        // Up to the entries there are now; a stream's last line without
        // its newline takes its place in the merge by the entry of its last
        // bytes, as in `last_lines`: known before reading, so that lines
        // need not be held back.
        let Some(ix) = &mut self.index else {
            return Ok(());
        };
        let count = ix.refresh().map_err(io::Error::other)?;
        let count = w.upto.map_or(count, |u| u.min(count));
        let mut last: [Option<usize>; 2] = [None, None];
        let mut left = STREAMS.iter().filter(|&&s| w.which.wants(s)).count();
        for i in (self.pos.max(ix.first())..count).rev() {
            if left == 0 {
                break;
            }
            let Some(e) = ix.get(i) else { continue };
            let k = e.stream.index();
            if e.kind == EntryKind::Data && w.which.wants(e.stream) && last[k].is_none() {
                last[k] = Some(i);
                left -= 1;
            }
        }
        let mut close = [None, None];
        for (k, i) in last.iter().enumerate() {
            let Some(e) = i.and_then(|i| ix.get(i)) else {
                continue;
            };
            let end = e.offset + u64::from(e.len);
            if end > 0 && self.logs[k].read_range(end - 1, end)? != b"\n" {
                close[k] = *i;
            }
        }
        let upto = Window {
            upto: Some(count),
            ..*w
        };
        self.advance_seq(&upto, close, &mut |_, l| from_first(l))
    }

    /// The last `n` bytes in `w`, in arrival order, handed to `emit` as
    /// (stream, bytes) pieces of at most [`PIECE`] bytes: the start is
    /// found walking backward, then the bytes are read forward, so memory
    /// does not grow with `n`.
    pub fn last_bytes(
        &mut self,
        n: u64,
        w: &Window,
        emit: &mut dyn FnMut(Stream, &[u8]),
    ) -> io::Result<()> {
        // What to print: (stream, start, end) ranges, oldest first.
        let mut ranges: Vec<(Stream, u64, u64)> = Vec::new();
        let mut left = n;
        if let Some(ix) = &self.index {
            let mut i = ix.len();
            let mut from = ix.len();
            let mut cut = 0;
            while i > ix.first() && left > 0 {
                i -= 1;
                let Some(e) = ix.get(i) else { continue };
                if e.kind != EntryKind::Data || !w.which.wants(e.stream) || !w.admits(e.time) {
                    continue;
                }
                let end = e.offset + u64::from(e.len);
                let there = end.saturating_sub(e.offset.max(self.logs[e.stream.index()].first()));
                let take = there.min(left);
                left -= take;
                from = i;
                cut = take;
            }
            for j in from..ix.len() {
                let Some(e) = ix.get(j) else { continue };
                if e.kind != EntryKind::Data || !w.which.wants(e.stream) || !w.admits(e.time) {
                    continue;
                }
                let end = e.offset + u64::from(e.len);
                let start = if j == from { end - cut } else { e.offset };
                ranges.push((
                    e.stream,
                    start.max(self.logs[e.stream.index()].first()),
                    end,
                ));
            }
            self.pos = ix.len();
        } else {
            for stream in STREAMS.into_iter().rev().filter(|&s| w.which.wants(s)) {
                let log = &self.logs[stream.index()];
                let end = log.end();
                let start = end.saturating_sub(left).max(log.first());
                left -= end - start;
                ranges.push((stream, start, end));
            }
            ranges.reverse();
        }
        for (stream, start, end) in ranges {
            let mut at = start;
            while at < end {
                let bytes = self.logs[stream.index()].read_range(at, end.min(at + PIECE))?;
                if bytes.is_empty() {
                    break;
                }
                at += bytes.len() as u64;
                emit(stream, &bytes);
            }
        }
        Ok(())
    }

    /// Takes in what the index gained since the last look, handing each
    /// completed line in `w` to `emit`.
    pub fn advance(&mut self, w: &Window, emit: &mut dyn FnMut(Line)) -> io::Result<()> {
        self.advance_seq(w, [None, None], &mut |_, line| emit(line))
    }

    /// [`Source::advance`], telling the index entry each line ended in.
    ///
    /// `close`: per stream, the entry after which its line in progress is
    /// handed out as a whole line, newline or not (its last).
    fn advance_seq(
        &mut self,
        w: &Window,
        close: [Option<usize>; 2],
        emit: &mut dyn FnMut(usize, Line),
    ) -> io::Result<()> {
        let Some(ix) = &mut self.index else {
            return Ok(());
        };
        let count = ix.refresh().map_err(io::Error::other)?;
        let count = w.upto.map_or(count, |u| u.min(count));
        // Entries up to this one were taken in with an earlier one.
        let mut merged = 0;
        for i in self.pos.max(ix.first())..count {
            let Some(e) = ix.get(i).filter(|_| i >= merged) else {
                continue;
            };
            let k = e.stream.index();
            if e.kind == EntryKind::Rotate {
                if e.offset > self.logs[k].base() {
                    // A rotation not yet known to the open files.
                    self.logs[k].reopen(ix).map_err(io::Error::other)?
                }
                continue;
            }
            if !w.which.wants(e.stream) {
                continue;
            }
            let end = e.offset + u64::from(e.len) * u64::from(e.kind == EntryKind::Data);
            let next = self.next[k];
            if next.is_some_and(|n| end < n || (end == n && e.kind == EntryKind::Data)) {
                // Taken in already (an entry moved ahead by compaction).
                continue;
            }
            // Where this entry's bytes start being there to read.
            let from = e
                .offset
                .max(self.logs[k].first())
                .max(next.unwrap_or(0))
                .min(end);
            self.next[k] = Some(end);
            let missed = from - next.unwrap_or(e.offset).min(from);
            let dropped = (e.kind == EntryKind::Dropped).then(|| {
                // One mark for a run of losses at one point.
                let mut len = u64::from(e.len);
                let mut j = i + 1;
                while let Some(d) = ix.get(j).filter(|d| {
                    j < count
                        && d.kind == EntryKind::Dropped
                        && d.stream == e.stream
                        && d.offset == e.offset
                }) {
                    len += u64::from(d.len);
                    j += 1;
                }
                merged = j;
                len
            });
            if missed > 0 || dropped.is_some() {
                // The line in progress ends here: what came of it is a
                // line of its own, then the mark.
                let text = std::mem::take(&mut self.pending[k]);
                let open = std::mem::take(&mut self.open[k]);
                if open || !text.is_empty() {
                    let (at, time) = self.pending_at[k];
                    emit(at, Line::new(e.stream, text, Some(time), false));
                }
                let time = Some(e.time);
                if missed > 0 && next.is_some() {
                    emit(i, Line::gap(e.stream, Gap::Missed(missed), time));
                }
                if let Some(len) = dropped.filter(|_| w.admits(e.time)) {
                    emit(i, Line::gap(e.stream, Gap::Dropped(len), time));
                }
            }
            if e.kind != EntryKind::Data {
                continue;
            }
            // A piece at a time, so that memory does not grow with the
            // size of one read of the supervisor.
            let mut at = from;
            while at < end {
                let chunk = self.logs[k].read_range(at, end.min(at + PIECE))?;
                if chunk.is_empty() {
                    break;
                }
                at += chunk.len() as u64;
                let pending = &mut self.pending[k];
                let mut rest = &chunk[..];
                while let Some(p) = rest.iter().position(|&b| b == b'\n') {
                    pending.extend_from_slice(&rest[..p]);
                    let text = std::mem::take(pending);
                    let open = std::mem::take(&mut self.open[k]);
                    if open || w.admits(e.time) {
                        emit(i, Line::new(e.stream, text, Some(e.time), false));
                    }
                    rest = &rest[p + 1..];
                }
                pending.extend_from_slice(rest);
                if !rest.is_empty() {
                    self.pending_at[k] = (i, e.time);
                }
                // A line longer than a piece is handed out as it comes,
                // unless lines are chosen by time (by their end).
                if self.pieces
                    && w.since.is_none()
                    && w.until.is_none()
                    && pending.len() as u64 >= PIECE
                {
                    self.open[k] = true;
                    let text = std::mem::take(pending);
                    emit(i, Line::new(e.stream, text, Some(e.time), true));
                }
            }
            if close[k] == Some(i) {
                let text = std::mem::take(&mut self.pending[k]);
                let open = std::mem::take(&mut self.open[k]);
                if open || (!text.is_empty() && w.admits(e.time)) {
                    emit(i, Line::new(e.stream, text, Some(e.time), false));
                }
            }
        }
        self.pos = count;
        Ok(())
    }

    /// Following: hands out, as pieces (see [`Source::pieces`]), the lines
    /// still missing their newline (a prompt, a progress bar), so that
    /// they show before their end comes. Their rest comes later as the
    /// end of the line. Not when lines are chosen by time (by their end).
    pub fn partial_lines(&mut self, w: &Window, emit: &mut dyn FnMut(Line)) {
        if !self.pieces || w.since.is_some() || w.until.is_some() {
            return;
        }
        for stream in STREAMS {
            let k = stream.index();
            if self.pending[k].is_empty() {
                continue;
            }
            self.open[k] = true;
            let text = std::mem::take(&mut self.pending[k]);
            emit(Line::new(stream, text, Some(self.pending_at[k].1), true));
        }
    }

    /// The lines still missing their newline, once the session is over.
    pub fn take_pending(&mut self) -> Vec<Line> {
        let pending = &mut self.pending;
        let open = &mut self.open;
        let at = self.pending_at;
        STREAMS
            .into_iter()
            .filter_map(|s| {
                let text = std::mem::take(&mut pending[s.index()]);
                let time = Some(at[s.index()].1).filter(|t| *t != Timestamp::default());
                // A line handed out in pieces still gets its end.
                let open = std::mem::take(&mut open[s.index()]);
                (open || !text.is_empty()).then_some(Line::new(s, text, time, false))
            })
            .collect()
    }

    /// Before following from entry `hi`: the start of each stream's
    /// unfinished last line, so that it is printed whole once it ends.
    fn keep_partial_lines(
        &mut self,
        hi: usize,
        mut stream_end: [Option<u64>; 2],
        mut cut_last: [bool; 2],
        w: &Window,
        emit: &mut dyn FnMut(Line),
    ) -> io::Result<()> {
        let Some(ix) = &self.index else { return Ok(()) };
        for stream in STREAMS.into_iter().filter(|&s| w.which.wants(s)) {
            let k = stream.index();
            if stream_end[k].is_none() {
                let last = (ix.first()..hi)
                    .rev()
                    .filter_map(|i| ix.get(i))
                    .find(|e| e.stream == stream && e.kind != EntryKind::Rotate);
                cut_last[k] = last.is_some_and(|e| e.kind == EntryKind::Dropped);
                stream_end[k] = last.map(|e| match e.kind {
                    EntryKind::Data => e.offset + u64::from(e.len),
                    _ => e.offset,
                });
            }
            // Bytes from here on are new to this reader (so it can tell
            // which it missed).
            self.next[k] = stream_end[k].or((ix.first() == 0).then_some(0));
            let Some(end) = stream_end[k].filter(|_| !cut_last[k]) else {
                continue;
            };
            let start = self.logs[k].line_start(end)?;
            let time = hi.checked_sub(1).and_then(|i| ix.get(i)).map(|e| e.time);
            if let Some(time) = time {
                self.pending_at[k] = (hi - 1, time);
            }
            // Only the line's last piece is kept back.
            let (log, open) = (&self.logs[k], &mut self.open[k]);
            self.pending[k] =
                emit_pieces(log, self.pieces, open, stream, (start, end), time, emit)?;
        }
        Ok(())
    }

    /// Lines of a session without an index (it failed before logging):
    /// each wanted stream in turn, the last `n` of each when given.
    fn without_index(&self, n: Option<usize>, w: &Window) -> io::Result<Vec<Line>> {
        let mut lines = Vec::new();
        for stream in STREAMS.into_iter().filter(|&s| w.which.wants(s)) {
            let log = &self.logs[stream.index()];
            let bytes = log.read_range(log.first(), log.end())?;
            let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
            if body.is_empty() && bytes.is_empty() {
                continue;
            }
            let all: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
            let skip = n.map_or(0, |n| all.len().saturating_sub(n));
            lines.extend(
                all[skip..]
                    .iter()
                    .map(|t| Line::new(stream, t.to_vec(), None, false)),
            );
        }
        Ok(lines)
    }
}

/// Hands out bytes `start..end` of `stream` (in `log`) in [`PIECE`]s while
/// more than a piece is left, when `pieces` is set (marking the line
/// `open`), and returns what is left: at most a piece then.
fn emit_pieces(
    log: &StreamLog,
    pieces: bool,
    open: &mut bool,
    stream: Stream,
    (start, end): (u64, u64),
    time: Option<Timestamp>,
    emit: &mut dyn FnMut(Line),
) -> io::Result<Vec<u8>> {
    let mut at = start;
    while pieces && end.saturating_sub(at) > PIECE {
        let text = log.read_range(at, at + PIECE)?;
        if text.is_empty() {
            break;
        }
        at += text.len() as u64;
        *open = true;
        emit(Line::new(stream, text, time, true));
    }
    log.read_range(at, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_choice_wants_its_streams_only() {
        use Stream::{Stderr, Stdout};
        assert!(Which::Out.wants(Stdout) && !Which::Out.wants(Stderr));
        assert!(Which::Err.wants(Stderr) && !Which::Err.wants(Stdout));
        assert!(Which::All.wants(Stdout) && Which::All.wants(Stderr));
    }

    #[test]
    fn gaps_say_how_many_bytes_of_which_stream_and_why() {
        assert_eq!(
            Gap::Dropped(42).text(Stream::Stderr),
            "[42 bytes of stderr lost here: they could not be logged]"
        );
        assert_eq!(
            Gap::Missed(7).text(Stream::Stdout),
            "missed 7 bytes of stdout: rotated away (--max-log-size) before they were read"
        );
    }
}

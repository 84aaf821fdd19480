//! `--screen`: what a tty session's screen shows now, as plain text (what
//! `tmux capture-pane -p` prints), from the recent output run through a
//! terminal emulator at the session's window size.

use std::io::Write;
use std::num::NonZeroU16;

use anyhow::bail;

use shared::index::Reader;
use shared::layout::{self, Stream};
use shared::logs::StreamLog;
use shared::Session;

/// Output fed to the emulator: enough for any full-screen program to have
/// drawn its whole screen, and a bound on the work whatever the log's size.
const SCREEN_BYTES: u64 = 4 << 20;

/// Prints the screen of the tty session `session`, one line per row,
/// trailing blanks trimmed.
pub fn print(session: &Session, out: &mut impl Write) -> anyhow::Result<()> {
    let id = &session.id;
    let record = match &session.record {
        Ok(r) => r,
        Err(e) => bail!("{id} cannot be read: {e}"),
    };
    if !record.tty {
        bail!("{id} is not a tty session: it has no screen (its output is lines; drop --screen)");
    }
    let [cols, rows] = record.window.or(record.size).unwrap_or([80, 24]);
    let nz = |n: u16| NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN);
    let mut parser = vt100::Parser::new(nz(rows), nz(cols), 0);
    let index = Reader::open(&session.dir.join(layout::INDEX)).ok();
    let log = StreamLog::open(&session.dir, Stream::Stdout, index.as_ref())?;
    let end = log.end();
    let start = end.saturating_sub(SCREEN_BYTES).max(log.first());
    let mut bytes = log.read_range(start, end)?;
    if start > log.first() {
        // Start at a line, not in the middle of an escape sequence.
        let cut = bytes.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
        bytes.drain(..cut);
    }
    parser.process(&bytes);
    for row in parser.screen().rows(0, cols.max(1)) {
        writeln!(out, "{}", row.trim_end())?;
    }
    Ok(())
}

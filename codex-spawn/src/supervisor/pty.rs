//! The pseudo-terminal of a tty session: its master side, the window size,
//! the repaint "jiggle" on attach, and the answers to the terminal queries
//! programs make while nobody is attached (the interactive codex gives up
//! when its cursor-position query goes unanswered).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::pty::{openpty, Winsize};

use crate::feed::Feed;

/// How long the jiggled size lasts before the real one comes back.
const JIGGLE: Duration = Duration::from_millis(50);
/// Bytes read from the master at a time (a pty hands out at most a few KiB
/// per read; a small buffer keeps an idle session small).
const CHUNK: usize = 8 * 1024;

nix::ioctl_write_ptr_bad!(set_winsize, nix::libc::TIOCSWINSZ, Winsize);

/// Opens a pty of `cols` x `rows`: (master, slave), both close-on-exec.
pub fn open(cols: u16, rows: u16) -> io::Result<(OwnedFd, OwnedFd)> {
    let size = winsize(cols, rows);
    let pty = openpty(Some(&size), None)?;
    for fd in [&pty.master, &pty.slave] {
        fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    }
    Ok((pty.master, pty.slave))
}

fn winsize(cols: u16, rows: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// The supervisor's side of the terminal.
pub struct Pty {
    master: Option<File>,
    /// What [`Pty::read`] reads into.
    buf: Vec<u8>,
    size: (u16, u16),
    /// Input for the program, written to a second handle of the master.
    feed: Feed,
    /// When to restore the size after a jiggle.
    jiggle_until: Option<Instant>,
    queries: QueryScanner,
}

impl Pty {
    /// Wraps the master side (made non-blocking) of a terminal of `size`.
    pub fn new(master: OwnedFd, size: (u16, u16)) -> io::Result<Pty> {
        fcntl(master.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        let feed = Feed::new(master.try_clone()?)?;
        Ok(Pty {
            master: Some(File::from(master)),
            buf: vec![0; CHUNK],
            size,
            feed,
            jiggle_until: None,
            queries: QueryScanner::default(),
        })
    }

    /// The master, while the program's side is open (for poll).
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.master.as_ref().map(AsFd::as_fd)
    }

    /// The window size: columns, rows.
    pub fn size(&self) -> (u16, u16) {
        self.size
    }

    /// Stops reading the terminal.
    pub fn close(&mut self) {
        self.master = None;
    }

    /// The master to poll for room, while input waits for it.
    pub fn waiting_fd(&self) -> Option<BorrowedFd<'_>> {
        self.feed.waiting_fd()
    }

    /// Reads what the program wrote; `None` when nothing is there now, an
    /// empty vector once the program's side is closed.
    pub fn read(&mut self) -> Option<Vec<u8>> {
        let master = self.master.as_mut()?;
        match master.read(&mut self.buf) {
            Ok(0) => {
                self.master = None;
                Some(Vec::new())
            }
            Ok(n) => Some(self.buf[..n].to_vec()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                None
            }
            // EIO: every process has closed the slave.
            Err(_) => {
                self.master = None;
                Some(Vec::new())
            }
        }
    }

    /// Answers the terminal queries in `output` (while nobody is attached
    /// to answer them).
    pub fn answer_queries(&mut self, output: &[u8]) {
        let size = self.size;
        for answer in self.queries.scan(output, size) {
            let _ = self.input(&answer);
        }
    }

    /// Queues `bytes` as typed input and writes what the terminal takes;
    /// false when refused (the terminal is gone).
    pub fn input(&mut self, bytes: &[u8]) -> bool {
        self.feed.push(bytes)
    }

    /// The program's input on its way.
    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// Types the terminal's end-of-file character (VEOF, normally ctrl-D):
    /// a program reading lines sees the end of its input.
    pub fn end_of_input(&mut self) {
        let veof = self
            .master
            .as_ref()
            .and_then(|m| nix::sys::termios::tcgetattr(m).ok())
            .map_or(4, |t| {
                t.control_chars[nix::sys::termios::SpecialCharacterIndices::VEOF as usize]
            });
        let _ = self.input(&[veof]);
    }

    /// Writes queued input as far as the terminal takes it.
    pub fn write_pending(&mut self) {
        self.feed.write_pending();
    }

    /// Sets the window size; the kernel tells the program (SIGWINCH to its
    /// foreground process group) when it changes.
    pub fn resize(&mut self, cols: u16, rows: u16) {
        if cols == 0 || rows == 0 {
            return;
        }
        self.size = (cols, rows);
        self.jiggle_until = None;
        self.apply(cols, rows);
    }

    /// Makes the program repaint: a size one row taller, then, shortly
    /// after, the real one (a full-screen program redraws on each change).
    pub fn jiggle(&mut self) {
        let (cols, rows) = self.size;
        self.apply(cols, rows.saturating_add(1));
        self.jiggle_until = Some(Instant::now() + JIGGLE);
    }

    /// When the jiggle must end.
    pub fn deadline(&self) -> Option<Instant> {
        self.jiggle_until
    }

    /// Ends a jiggle that is due.
    pub fn check_deadline(&mut self, now: Instant) {
        if self.jiggle_until.is_some_and(|t| t <= now) {
            self.jiggle_until = None;
            let (cols, rows) = self.size;
            self.apply(cols, rows);
        }
    }

    fn apply(&self, cols: u16, rows: u16) {
        if let Some(master) = &self.master {
            let size = winsize(cols, rows);
            // Safety: TIOCSWINSZ reads one Winsize from memory we own.
            let _ = unsafe { set_winsize(master.as_raw_fd(), &size) };
        }
    }
}

/// Finds terminal queries in program output, across reads.
#[derive(Default)]
struct QueryScanner {
    /// The unfinished escape sequence at the end of the last output.
    carry: Vec<u8>,
}

/// Queries we answer, and the answer (`None`: the cursor position, made
/// from the window size).
const QUERIES: [(&[u8], Option<&[u8]>); 9] = [
    (b"\x1b[6n", None),
    (b"\x1b[?6n", None),
    (b"\x1b[c", Some(b"\x1b[?1;2c")),
    (b"\x1b[0c", Some(b"\x1b[?1;2c")),
    (b"\x1b[>c", Some(b"\x1b[>0;276;0c")),
    (b"\x1b[>0c", Some(b"\x1b[>0;276;0c")),
    (b"\x1b[?u", Some(b"\x1b[?0u")),
    (b"\x1b]10;?", Some(b"\x1b]10;rgb:ffff/ffff/ffff\x1b\\")),
    (b"\x1b]11;?", Some(b"\x1b]11;rgb:0000/0000/0000\x1b\\")),
];

impl QueryScanner {
    fn scan(&mut self, output: &[u8], size: (u16, u16)) -> Vec<Vec<u8>> {
        let mut data = std::mem::take(&mut self.carry);
        data.extend_from_slice(output);
        let mut answers = Vec::new();
        let mut i = 0;
        while let Some(off) = data[i..].iter().position(|&b| b == 0x1b) {
            let at = i + off;
            let rest = &data[at..];
            match QUERIES.iter().find(|(q, _)| rest.starts_with(q)) {
                Some((q, answer)) => {
                    answers.push(match answer {
                        Some(a) => a.to_vec(),
                        // The cursor is reported at the last row: where a
                        // shell prompt or an inline TUI would be.
                        None => format!("\x1b[{};1R", size.1.max(1)).into_bytes(),
                    });
                    i = at + q.len();
                }
                None if rest.len() < 6 && QUERIES.iter().any(|(q, _)| q.starts_with(rest)) => {
                    self.carry = rest.to_vec();
                    break;
                }
                None => i = at + 1,
            }
        }
        answers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_queries_even_split_across_reads() {
        let mut s = QueryScanner::default();
        assert!(s.scan(b"hello \x1b[", (80, 24)).is_empty());
        assert_eq!(s.scan(b"6n more", (80, 24)), vec![b"\x1b[24;1R".to_vec()]);
        let answers = s.scan(b"\x1b[?u\x1b[c\x1b[1mbold", (80, 24));
        assert_eq!(answers, vec![b"\x1b[?0u".to_vec(), b"\x1b[?1;2c".to_vec()]);
        assert!(s.scan(b"\x1b[2J\x1b[H", (80, 24)).is_empty());
    }
}

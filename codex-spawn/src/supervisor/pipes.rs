//! The command's stdout and stderr, read in the order they were written.
//!
//! Two pipes alone cannot tell which of them was written first: when both
//! hold data, `echo a; echo b >&2; echo c` could be logged as a, c, b. So:
//!
//! - each pipe is a packet pipe (`O_DIRECT`): every write of up to 4 KiB
//!   stays one packet, and a read returns one packet;
//! - each read end has `O_ASYNC` with `F_SETSIG`: the kernel queues one
//!   real-time signal, carrying the pipe's descriptor, per write, in the
//!   order the writes happened; the supervisor takes them from its
//!   signalfd.
//!
//! For each such event the supervisor reads that pipe's packets up to the
//! first short one (the end of that write). The order is exact for writes
//! not a multiple of 4 KiB; a larger write is read whole at its event. If
//! the kernel's queue of signals overflows it sends SIGIO instead, and the
//! supervisor reads both pipes empty (order as good as two pipes allow).
//!
//! Bulk output (a pipe found holding [`BULK`] bytes or more while nobody
//! needs to see them) switches that pipe to polling: its announcements are
//! turned off, and whatever it holds is spliced into the log whenever it is
//! readable, until it is found empty; then announcements resume. A
//! program writing a gigabyte in 4 KiB writes would otherwise queue a
//! quarter of a million signals, each read and answered. Meanwhile a write
//! announced on the other pipe is taken only after the bulk pipe has been
//! emptied, so it still comes after what was written before it.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::fcntl::{fcntl, FcntlArg, OFlag};

use shared::layout::Stream;
use shared::Timestamp;

use crate::logs::Logs;

/// The size of one pipe packet (`PIPE_BUF`).
const PACKET: usize = 4096;
/// Bytes of one stream gathered before they are logged as one chunk.
const BATCH: usize = 1 << 20;
/// Batch memory kept between bursts.
const KEEP: usize = 64 * 1024;
/// The pipes' capacity: 256 packets.
const PIPE_SIZE: i32 = 1 << 20;
/// Bytes found waiting in a pipe at once that make its output bulk.
const BULK: usize = 64 * 1024;
/// Bytes spliced from a bulk pipe before the loop's other work gets a turn.
const PUMP_BUDGET: usize = 16 << 20;

/// `fcntl` command choosing the signal sent for `O_ASYNC` (Linux's value on
/// every architecture; the libc crate does not name it).
const F_SETSIG: nix::libc::c_int = 10;

/// The real-time signal that announces a write on one of the pipes.
pub fn event_signal() -> i32 {
    nix::libc::SIGRTMIN() + 2
}

/// Creates a packet pipe for one output stream: (read end, write end).
pub fn output_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_DIRECT)?;
    // Room for bursts; the kernel may refuse (pipe-max-size), which is fine.
    let _ = fcntl(read.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    Ok((read, write))
}

/// Asks the kernel to announce each write on `read` with
/// [`event_signal`] to this process, and makes reads non-blocking.
pub fn announce_writes(read: &OwnedFd) -> io::Result<()> {
    let fd = read.as_raw_fd();
    // Safety: fcntl with F_SETOWN and F_SETSIG takes plain integers and
    // touches no memory; `fd` is a descriptor we own.
    unsafe {
        if nix::libc::fcntl(fd, nix::libc::F_SETOWN, nix::unistd::getpid().as_raw()) < 0
            || nix::libc::fcntl(fd, F_SETSIG, event_signal()) < 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK | OFlag::O_ASYNC))?;
    Ok(())
}

/// Turns the announcements of writes on `read` on or off (see the module's
/// notes on bulk output).
fn set_announced(read: &File, on: bool) -> io::Result<()> {
    let flags = match on {
        true => OFlag::O_NONBLOCK | OFlag::O_ASYNC,
        false => OFlag::O_NONBLOCK,
    };
    fcntl(read.as_raw_fd(), FcntlArg::F_SETFL(flags))?;
    Ok(())
}

/// Where what is read goes besides the logs (the agent summary, attached
/// clients): every byte that reaches the logs through user space reaches
/// it too, in the same pieces, whatever the size of a batch.
pub type Sink<'a> = &'a mut dyn FnMut(Stream, &[u8]);

/// The read ends of the command's output pipes.
pub struct Pipes {
    out: Option<File>,
    err: Option<File>,
    /// Bytes read and not yet logged, in the order read.
    batch: Vec<u8>,
    /// The pieces of `batch`: (stream, end offset in `batch`).
    pieces: Vec<(Stream, usize)>,
    /// Whether bulk output may go straight to the logs (nobody needs to
    /// see the bytes: no agent summary, no client attached). Set before
    /// every read.
    pub splice: bool,
    /// Per stream (stdout, stderr): whether the pipe is in bulk mode,
    /// polled and spliced rather than announced.
    bulk: [bool; 2],
}

impl Pipes {
    /// Wraps the two read ends (already set up with [`announce_writes`]).
    pub fn new(out: OwnedFd, err: OwnedFd) -> Pipes {
        Pipes {
            out: Some(File::from(out)),
            err: Some(File::from(err)),
            batch: Vec::with_capacity(KEEP),
            pieces: Vec::new(),
            splice: false,
            bulk: [false; 2],
        }
    }

    /// Whether `stream`'s pipe is in bulk mode: polled for input rather
    /// than announced.
    pub fn is_bulk(&self, stream: Stream) -> bool {
        self.bulk[stream.index()]
    }

    /// Serves a bulk pipe found readable (or hung up): splices what it
    /// holds into the log, up to a budget; once it is found empty, bulk
    /// mode ends (see [`Pipes::end_bulk`]). When nobody may skip user space
    /// any more (a client attached), bulk mode ends at once and the pipe
    /// is read. Does nothing to a pipe not in bulk mode.
    pub fn pump(&mut self, stream: Stream, logs: &mut Logs, sink: Sink<'_>) {
        if !self.is_bulk(stream) {
            return;
        }
        if !self.splice {
            self.leave_bulk(stream, logs, sink);
            return;
        }
        self.log_batch(logs, sink);
        let mut moved = 0;
        while moved < PUMP_BUDGET {
            let Some(file) = self.pipe(stream).as_ref() else {
                self.bulk[stream.index()] = false;
                return;
            };
            match logs.splice_from(stream, file.as_fd(), Timestamp::now()) {
                Ok(0) => {
                    *self.pipe(stream) = None;
                    self.bulk[stream.index()] = false;
                    return;
                }
                Ok(n) => moved += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.end_bulk(stream);
                    return;
                }
                // Cannot splice (a full disk): the way through user space
                // counts what cannot be logged.
                Err(_) => {
                    self.leave_bulk(stream, logs, sink);
                    return;
                }
            }
        }
    }

    /// Empties every bulk pipe but `stream`'s before a write announced on
    /// `stream` is taken: what they hold was written before it (or at the
    /// same time).
    fn pump_others(&mut self, stream: Stream, logs: &mut Logs, sink: Sink<'_>) {
        // Once, up to the budget: a pipe that never empties (`yes`) must
        // not hold up the loop; what its writer adds meanwhile is no
        // earlier than the announced write anyway.
        for other in [Stream::Stdout, Stream::Stderr] {
            if other != stream {
                self.pump(other, logs, sink);
            }
        }
    }

    /// Ends bulk mode on a pipe found empty, without reading ahead of the
    /// announcements: they are turned on, then the pipe is looked at. Still
    /// empty, every later write is announced and bulk mode is over.
    /// Written to in between, the pipe stays in bulk mode (announcements
    /// off again; those already queued are ignored) and is spliced when
    /// next found readable. A pipe whose announcements cannot be turned
    /// on stays in bulk mode too, so it is still polled and read.
    fn end_bulk(&mut self, stream: Stream) {
        let waiting = match self.pipe(stream).as_ref() {
            None => 0,
            Some(file) if set_announced(file, true).is_err() => return,
            Some(_) => self.waiting(stream),
        };
        if waiting == 0 {
            self.bulk[stream.index()] = false;
        } else if let Some(file) = self.pipe(stream).as_ref() {
            // Failing, it stays announced: then it is no longer bulk.
            self.bulk[stream.index()] = set_announced(file, false).is_ok();
        }
    }

    /// Leaves bulk mode whatever the pipe holds: announcements on, and
    /// what it holds (announced to no one) read now, through user space.
    fn leave_bulk(&mut self, stream: Stream, logs: &mut Logs, sink: Sink<'_>) {
        if let Some(file) = self.pipe(stream).as_ref() {
            if set_announced(file, true).is_err() {
                // Still polled: read what it holds meanwhile.
                self.read(stream, logs, false, sink);
                return;
            }
        }
        self.bulk[stream.index()] = false;
        self.read(stream, logs, false, sink);
    }

    /// Enters bulk mode on `stream` (while nobody needs its bytes).
    fn start_bulk(&mut self, stream: Stream) {
        if !self.splice || self.is_bulk(stream) {
            return;
        }
        if let Some(file) = self.pipe(stream).as_ref() {
            if set_announced(file, false).is_ok() {
                self.bulk[stream.index()] = true;
            }
        }
    }

    fn pipe(&mut self, stream: Stream) -> &mut Option<File> {
        match stream {
            Stream::Stdout => &mut self.out,
            Stream::Stderr => &mut self.err,
        }
    }

    /// Whether `stream`'s pipe is still open.
    pub fn is_open(&self, stream: Stream) -> bool {
        match stream {
            Stream::Stdout => self.out.is_some(),
            Stream::Stderr => self.err.is_some(),
        }
    }

    /// The descriptor of `stream`'s pipe, while open (for poll).
    pub fn fd(&self, stream: Stream) -> Option<std::os::fd::BorrowedFd<'_>> {
        match stream {
            Stream::Stdout => self.out.as_ref().map(AsFd::as_fd),
            Stream::Stderr => self.err.as_ref().map(AsFd::as_fd),
        }
    }

    /// Which stream a signal's descriptor belongs to.
    pub fn stream_of(&self, fd: RawFd) -> Option<Stream> {
        [Stream::Stdout, Stream::Stderr]
            .into_iter()
            .find(|&s| self.fd(s).is_some_and(|f| f.as_raw_fd() == fd))
    }

    /// Takes in one announced write on `stream`: its packets, up to the
    /// first short one.
    pub fn on_write(&mut self, stream: Stream, logs: &mut Logs, sink: Sink<'_>) {
        self.pump_others(stream, logs, sink);
        if self.is_bulk(stream) {
            // Announced before bulk mode began: its bytes are spliced
            // with the rest when the pipe is next found readable.
            return;
        }
        self.read(stream, logs, true, sink);
    }

    /// Reads `stream`'s pipe until it is empty (or at its end, closing it).
    pub fn drain(&mut self, stream: Stream, logs: &mut Logs, sink: Sink<'_>) {
        self.pump(stream, logs, sink);
        if self.is_bulk(stream) {
            self.leave_bulk(stream, logs, sink);
        } else {
            self.read(stream, logs, false, sink);
        }
    }

    fn read(&mut self, stream: Stream, logs: &mut Logs, one_write: bool, sink: Sink<'_>) {
        // More than a packet waiting means bulk output (or a reader far
        // behind, where the order is lost already): move it all at once.
        if one_write && self.splice {
            let waiting = self.waiting(stream);
            if waiting > PACKET && self.splice_rest(stream, logs, sink) {
                if waiting >= BULK {
                    self.start_bulk(stream);
                    // Unannounced writes could come after an announced
                    // one on the other pipe and be taken before it: bulk
                    // mode lasts only while the writer stays ahead.
                    if self.is_bulk(stream) && self.waiting(stream) == 0 {
                        self.end_bulk(stream);
                    }
                }
                return;
            }
        }
        let mut packet = [0u8; PACKET];
        loop {
            let Some(file) = self.pipe(stream).as_mut() else {
                return;
            };
            match file.read(&mut packet) {
                Ok(0) => {
                    *self.pipe(stream) = None;
                    return;
                }
                Ok(n) => {
                    self.batch.extend_from_slice(&packet[..n]);
                    match self.pieces.last_mut() {
                        // Consecutive reads of one stream make one piece.
                        Some((s, end)) if *s == stream => *end = self.batch.len(),
                        _ => self.pieces.push((stream, self.batch.len())),
                    }
                    if self.batch.len() >= BATCH {
                        self.log_batch(logs, sink);
                    }
                    if one_write && n < PACKET {
                        return;
                    }
                    if one_write && self.splice && self.splice_rest(stream, logs, sink) {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    *self.pipe(stream) = None;
                    return;
                }
            }
        }
    }

    /// Bytes waiting in `stream`'s pipe.
    fn waiting(&self, stream: Stream) -> usize {
        let Some(fd) = self.fd(stream) else { return 0 };
        let mut n: nix::libc::c_int = 0;
        // Safety: FIONREAD writes one int into memory we own.
        let rc = unsafe { nix::libc::ioctl(fd.as_raw_fd(), nix::libc::FIONREAD, &mut n) };
        if rc < 0 {
            0
        } else {
            n.max(0) as usize
        }
    }

    /// A full packet means bulk output: order at this scale is moot, so
    /// move whatever the pipe holds straight to the log. Returns false
    /// when splicing is not possible and the caller should read instead.
    fn splice_rest(&mut self, stream: Stream, logs: &mut Logs, sink: Sink<'_>) -> bool {
        // What was read before goes first.
        self.log_batch(logs, sink);
        let Some(file) = self.pipe(stream).as_ref() else {
            return true;
        };
        match logs.splice_from(stream, file.as_fd(), Timestamp::now()) {
            Ok(0) => {
                *self.pipe(stream) = None;
                true
            }
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
            Err(_) => false,
        }
    }

    /// Stops reading both pipes.
    pub fn close(&mut self) {
        self.out = None;
        self.err = None;
    }

    /// Logs what has been read and not yet logged, handing each piece to
    /// `sink` too (for attached clients), and commits the index.
    pub fn flush(&mut self, logs: &mut Logs, sink: Sink<'_>) {
        self.log_batch(logs, sink);
        logs.commit();
    }

    /// Hands each piece read to `sink`, then logs them.
    fn log_batch(&mut self, logs: &mut Logs, sink: Sink<'_>) {
        if self.pieces.is_empty() {
            return;
        }
        let mut start = 0;
        for &(stream, end) in &self.pieces {
            sink(stream, &self.batch[start..end]);
            start = end;
        }
        let mut start = 0;
        let pieces: Vec<(Stream, &[u8])> = self
            .pieces
            .iter()
            .map(|&(stream, end)| {
                let piece = (stream, &self.batch[start..end]);
                start = end;
                piece
            })
            .collect();
        logs.log_pieces(&pieces, Timestamp::now());
        self.batch.clear();
        self.pieces.clear();
        // After a burst, give the memory back: an idle session stays small.
        if self.batch.capacity() > 4 * KEEP {
            self.batch.shrink_to(KEEP);
        }
    }
}

//! Input on its way to the command (its terminal, or its stdin pipe):
//! written as far as the other side takes it, the rest kept. Nothing is
//! dropped: while the backlog is full the supervisor stops reading the
//! clients that send input (back-pressure), and it counts what was
//! accepted and written, so that a client can be told when its input has
//! been delivered, or that it never will be.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg, OFlag};

/// Input kept for the command while it does not take more, beyond which
/// clients are no longer read.
const FULL: usize = 1 << 20;

/// Whether input accepted up to some point has reached the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// All of it was written to the command's input.
    Done,
    /// Not yet: the command has not taken it all.
    Waiting,
    /// Never will be: this many bytes are lost (the command stopped
    /// reading its input).
    Failed(u64),
}

/// A non-blocking writer with a backlog.
pub struct Feed {
    file: Option<File>,
    pending: VecDeque<u8>,
    /// Close once what is pending is written (the end of the input).
    closing: bool,
    /// Bytes accepted since the start.
    accepted: u64,
    /// Bytes written to the command's input since the start.
    written: u64,
}

impl Feed {
    /// Feeds `fd` (made non-blocking).
    pub fn new(fd: OwnedFd) -> io::Result<Feed> {
        fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        Ok(Feed {
            file: Some(File::from(fd)),
            pending: VecDeque::new(),
            closing: false,
            accepted: 0,
            written: 0,
        })
    }

    /// The descriptor to poll for room, while input waits.
    pub fn waiting_fd(&self) -> Option<BorrowedFd<'_>> {
        self.file
            .as_ref()
            .filter(|_| !self.pending.is_empty())
            .map(AsFd::as_fd)
    }

    /// Whether the backlog is full: clients are not read meanwhile.
    pub fn is_full(&self) -> bool {
        self.pending.len() >= FULL
    }

    /// Queues `bytes` and writes what the other side takes. Refused (false)
    /// once the input is closed or its reader gone.
    pub fn push(&mut self, bytes: &[u8]) -> bool {
        if !self.is_open() {
            return bytes.is_empty();
        }
        self.accepted += bytes.len() as u64;
        self.pending.extend(bytes);
        self.write_pending();
        true
    }

    /// Bytes accepted so far (the mark a sync waits for).
    pub fn accepted(&self) -> u64 {
        self.accepted
    }

    /// Whether the input accepted up to `mark` has been written.
    pub fn delivery(&self, mark: u64) -> Delivery {
        if self.written >= mark {
            Delivery::Done
        } else if self.file.is_none() {
            Delivery::Failed(mark - self.written)
        } else {
            Delivery::Waiting
        }
    }

    /// Whether input is still taken (not closed, the reader not gone).
    pub fn is_open(&self) -> bool {
        self.file.is_some() && !self.closing
    }

    /// Ends the input: closed once what is queued is written, so that the
    /// reader sees the end of its input after the last byte.
    pub fn close(&mut self) {
        self.closing = true;
        self.write_pending();
    }

    /// Writes queued input as far as the other side takes it.
    pub fn write_pending(&mut self) {
        self.write_queued();
        if self.closing && self.pending.is_empty() {
            self.file = None;
        }
    }

    fn write_queued(&mut self) {
        let Some(file) = self.file.as_mut() else {
            self.pending.clear();
            return;
        };
        while !self.pending.is_empty() {
            let (front, _) = self.pending.as_slices();
            match file.write(front) {
                Ok(n) => {
                    self.pending.drain(..n);
                    self.written += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // The reader is gone (EPIPE): nothing will take input again.
                Err(_) => {
                    self.file = None;
                    self.pending.clear();
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Input beyond the backlog's mark is kept, not dropped, and its
    /// delivery is told once it is written, or that it failed.
    #[test]
    fn nothing_is_dropped_and_delivery_is_told() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let mut feed = Feed::new(w).unwrap();
        let data: Vec<u8> = (0..3 * FULL).map(|i| (i % 251) as u8).collect();
        assert!(feed.push(&data));
        assert!(feed.is_full());
        let mark = feed.accepted();
        assert_eq!(feed.delivery(mark), Delivery::Waiting);
        let mut reader = File::from(r);
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        while got.len() < data.len() {
            let n = reader.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
            feed.write_pending();
        }
        assert_eq!(got, data);
        assert_eq!(feed.delivery(mark), Delivery::Done);

        // The reader gone, input can no longer be delivered.
        drop(reader);
        assert!(feed.push(b"more"));
        assert_eq!(feed.delivery(feed.accepted()), Delivery::Failed(4));
        assert!(!feed.push(b"refused"));
    }
}

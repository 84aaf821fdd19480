//! Input on its way to the command (its terminal, or its stdin pipe):
//! written as far as the other side takes it, the rest kept, up to a bound.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg, OFlag};

/// Input kept for the command while it does not take more.
const MAX_PENDING: usize = 1 << 20;

/// A non-blocking writer with a bounded backlog.
pub struct Feed {
    file: Option<File>,
    pending: VecDeque<u8>,
    /// Close once what is pending is written (the end of the input).
    closing: bool,
}

impl Feed {
    /// Feeds `fd` (made non-blocking).
    pub fn new(fd: OwnedFd) -> io::Result<Feed> {
        fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        Ok(Feed {
            file: Some(File::from(fd)),
            pending: VecDeque::new(),
            closing: false,
        })
    }

    /// The descriptor to poll for room, while input waits.
    pub fn waiting_fd(&self) -> Option<BorrowedFd<'_>> {
        self.file
            .as_ref()
            .filter(|_| !self.pending.is_empty())
            .map(AsFd::as_fd)
    }

    /// Queues `bytes` (beyond the bound they are dropped) and writes what
    /// the other side takes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.closing {
            return;
        }
        let room = MAX_PENDING.saturating_sub(self.pending.len());
        self.pending.extend(&bytes[..bytes.len().min(room)]);
        self.write_pending();
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

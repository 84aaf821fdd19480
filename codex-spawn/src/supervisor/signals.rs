//! The signals the supervisor acts on, and what each one means. They are
//! blocked and read from a signalfd in the order they came (no handler
//! ever runs): the announcement of a write on an output pipe (see
//! [`crate::pipes`]), the overflow of those announcements, a child's end,
//! and a stop request (whose encoding [`shared::stop`] owns).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use nix::libc::signalfd_siginfo;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use shared::stop;

use crate::pipes;

/// A signal, decoded.
pub enum Arrival {
    /// A write on the output pipe with this descriptor.
    Write(RawFd),
    /// The kernel's queue of write announcements overflowed (SIGIO).
    Overflow,
    /// A stop request, with the grace before SIGKILL.
    Stop(Duration),
    /// A child ended, or changed state (SIGCHLD; they coalesce).
    Child,
}

/// The supervisor's signals, blocked, queued for one descriptor.
pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    /// Blocks the signals the supervisor handles, so that they queue for
    /// the signalfd from now on. Call it before the command exists, so that
    /// no SIGCHLD can be missed.
    pub fn block() -> nix::Result<Signals> {
        let mut mask = SigSet::empty();
        for sig in [Signal::SIGCHLD, Signal::SIGIO]
            .into_iter()
            .chain(stop::SIGNALS)
        {
            mask.add(sig);
        }
        let mut raw: nix::libc::sigset_t = *mask.as_ref();
        // Safety: sigaddset writes into the sigset we own; the number is a
        // valid real-time signal.
        unsafe { nix::libc::sigaddset(&mut raw, pipes::event_signal()) };
        // Safety: `raw` was initialised from a valid SigSet above.
        let mask = unsafe { SigSet::from_sigset_t_unchecked(raw) };
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)?;
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(Signals { fd })
    }

    /// The descriptor to poll: readable while signals are queued.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Takes every queued signal, in order, handing each to `handle`.
    pub fn take(&self, mut handle: impl FnMut(Arrival)) {
        let event = pipes::event_signal() as u32;
        let mut infos = [SIGINFO_ZERO; 64];
        loop {
            let n = read_signals(&self.fd, &mut infos);
            if n == 0 {
                break;
            }
            for info in &infos[..n] {
                let signo = info.ssi_signo as i32;
                let arrival = if info.ssi_signo == event {
                    Arrival::Write(info.ssi_fd)
                } else if signo == Signal::SIGCHLD as i32 {
                    Arrival::Child
                } else if signo == Signal::SIGIO as i32 {
                    Arrival::Overflow
                } else if let Some(grace) = stop::decode(signo, info.ssi_code, info.ssi_int) {
                    Arrival::Stop(grace)
                } else {
                    continue;
                };
                handle(arrival);
            }
        }
    }
}

/// A zeroed signalfd record, to size the buffer of [`read_signals`].
const SIGINFO_ZERO: signalfd_siginfo = {
    // Safety: signalfd_siginfo is plain integers; all zeroes is valid.
    unsafe { std::mem::zeroed() }
};

/// Reads as many queued signals as fit in `buf` with one read; returns how
/// many (0 when none are queued).
fn read_signals(fd: &SignalFd, buf: &mut [signalfd_siginfo]) -> usize {
    let size = std::mem::size_of::<signalfd_siginfo>();
    // Safety: the kernel writes whole signalfd_siginfo records into `buf`,
    // which we own and whose byte length we pass; they are plain integers.
    let n = unsafe {
        nix::libc::read(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            std::mem::size_of_val(buf),
        )
    };
    if n <= 0 {
        0
    } else {
        n as usize / size
    }
}

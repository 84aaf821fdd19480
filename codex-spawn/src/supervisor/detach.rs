//! Leaving the caller behind: a new session, no inherited descriptors,
//! the signals a long-lived monitor must ignore, and the subreaper bit.

use std::os::fd::RawFd;

use nix::sys::signal::{signal, SigHandler, Signal};

/// Detaches the supervisor from codex-spawn's terminal and process group,
/// keeping only the descriptors in `keep` (besides stdio, which codex-spawn
/// already pointed at /dev/null).
pub fn detach(keep: &[RawFd]) -> nix::Result<()> {
    // Already a session leader when codex-spawn's child detached before
    // exec'ing this image (see `crate::handoff`).
    if let Err(e) = nix::unistd::setsid() {
        let me = nix::unistd::getpid();
        if e != nix::errno::Errno::EPERM || nix::unistd::getsid(None) != Ok(me) {
            return Err(e);
        }
    }
    for sig in [Signal::SIGHUP, Signal::SIGPIPE, Signal::SIGXFSZ] {
        // Safety: SIG_IGN installs no handler code, so nothing can run in
        // signal context.
        unsafe { signal(sig, SigHandler::SigIgn) }?;
    }
    // Orphans of the command are re-parented to us, so they stay reapable
    // and killable when the command ends.
    nix::sys::prctl::set_child_subreaper(true)?;
    close_inherited(keep);
    for &fd in keep {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )?;
    }
    Ok(())
}

/// Closes every descriptor from 3 up except those in `keep`.
fn close_inherited(keep: &[RawFd]) {
    let mut keep: Vec<u32> = keep.iter().map(|&fd| fd as u32).collect();
    keep.sort_unstable();
    let mut first = 3u32;
    for fd in keep.into_iter().chain([u32::MAX]) {
        if fd > first {
            close_range(first, fd - 1);
        }
        first = fd.saturating_add(1);
    }
}

fn close_range(first: u32, last: u32) {
    // Safety: close_range only closes descriptors; none of the ranges holds
    // one this program still uses (the kept ones are excluded, and nothing
    // else has been opened yet).
    let rc = unsafe { nix::libc::syscall(nix::libc::SYS_close_range, first, last, 0) };
    if rc == 0 {
        return;
    }
    // Kernels before 5.9: close what /proc lists instead.
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let open: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| (first..=last).contains(fd))
        .collect();
    for fd in open {
        let _ = nix::unistd::close(fd as RawFd);
    }
}

//! The user's terminal as the tools see it: its size, and whether output
//! may be coloured.

use std::io::IsTerminal;
use std::os::fd::{AsFd, AsRawFd};

mod ioctl {
    nix::ioctl_read_bad!(get_winsize, nix::libc::TIOCGWINSZ, nix::libc::winsize);
}

/// The size of the terminal on `fd` as (columns, rows); `None` when `fd` is
/// not a terminal or reports no size.
pub fn size(fd: impl AsFd) -> Option<(u16, u16)> {
    let mut ws = nix::libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // Safety: TIOCGWINSZ writes one `winsize` into the struct we own, and
    // nothing else; on failure (not a terminal) it is left untouched.
    let ok = unsafe { ioctl::get_winsize(fd.as_fd().as_raw_fd(), &mut ws) }.is_ok();
    (ok && ws.ws_col > 0 && ws.ws_row > 0).then_some((ws.ws_col, ws.ws_row))
}

/// Whether to colour what goes to `out`: it is a terminal and `NO_COLOR`
/// (<https://no-color.org>) is unset or empty.
pub fn colour(out: &impl IsTerminal) -> bool {
    out.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

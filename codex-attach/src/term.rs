//! The user's terminal: raw mode with a guard that puts everything back on
//! every way out a process can catch (drop, panic, signals handled by the
//! caller).

use std::io::{self, Write};
use std::os::fd::BorrowedFd;
use std::sync::Mutex;

use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

/// What a full-screen program may have turned on, turned off again: leave
/// the alternate screen, show the cursor, stop mouse reporting and
/// bracketed paste, reset colours.
const RESET_MODES: &[u8] =
    b"\x1b[?1049l\x1b[?25h\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?2004l\x1b[0m";

/// The terminal settings to restore, for the panic hook.
static SAVED: Mutex<Option<Termios>> = Mutex::new(None);

fn stdin_fd() -> BorrowedFd<'static> {
    // Safety: descriptor 0 stays open for the whole life of the process.
    unsafe { BorrowedFd::borrow_raw(0) }
}

/// The terminal in raw mode, until dropped.
pub struct RawMode {
    _private: (),
}

impl RawMode {
    /// Puts the terminal on stdin in raw mode.
    pub fn enter() -> io::Result<RawMode> {
        let original = tcgetattr(stdin_fd())?;
        let mut raw = original.clone();
        cfmakeraw(&mut raw);
        *SAVED.lock().unwrap_or_else(|e| e.into_inner()) = Some(original);
        install_panic_hook();
        tcsetattr(stdin_fd(), SetArg::TCSADRAIN, &raw)?;
        Ok(RawMode { _private: () })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore();
    }
}

/// Puts the terminal back as it was before raw mode (once).
pub fn restore() {
    let saved = SAVED.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(original) = saved {
        let mut out = io::stdout();
        let _ = out.write_all(RESET_MODES);
        let _ = out.flush();
        let _ = tcsetattr(stdin_fd(), SetArg::TCSADRAIN, &original);
    }
}

fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}

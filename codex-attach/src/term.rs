//! The user's terminal: raw mode, and what is drawn on it, behind a guard
//! that puts everything back on every way out a process can catch (drop,
//! panic, signals handled by the caller).

use std::io::{self, Write};
use std::os::fd::BorrowedFd;
use std::sync::Mutex;

use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

use crate::display::{self, Display};

/// How the terminal is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// Raw mode: keys go to a program, whose output needs no processing
    /// (a tty session, driven or watched).
    Raw,
    /// Keys come one by one and are not echoed, but output is processed as
    /// usual (`\n` starts a line): watching a pipe session.
    RawInput,
}

/// What is put back.
struct Saved {
    termios: Termios,
    /// What codex-attach drew, when it draws on the terminal (stdout is
    /// the terminal and the session is a tty session).
    display: Option<Display>,
}

/// The terminal as found, for every way out (the panic hook included).
static SAVED: Mutex<Option<Saved>> = Mutex::new(None);

fn stdin_fd() -> BorrowedFd<'static> {
    // Safety: descriptor 0 stays open for the whole life of the process.
    unsafe { BorrowedFd::borrow_raw(0) }
}

fn saved() -> std::sync::MutexGuard<'static, Option<Saved>> {
    SAVED.lock().unwrap_or_else(|e| e.into_inner())
}

/// The terminal set up, until dropped.
pub struct Terminal {
    _private: (),
}

impl Terminal {
    /// Sets the terminal on stdin up as `setup` says. With `screen`, the
    /// size of the terminal on stdout, codex-attach draws on it: the
    /// screen is cleared and a kitty keyboard entry pushed, to be popped on
    /// the way out.
    pub fn enter(setup: Setup, screen: Option<(u16, u16)>) -> io::Result<Terminal> {
        let original = tcgetattr(stdin_fd())?;
        let mut raw = original.clone();
        cfmakeraw(&mut raw);
        if setup == Setup::RawInput {
            raw.output_flags = original.output_flags;
        }
        let display = screen.map(Display::new);
        *saved() = Some(Saved {
            termios: original,
            display,
        });
        install_panic_hook();
        tcsetattr(stdin_fd(), SetArg::TCSADRAIN, &raw)?;
        if screen.is_some() {
            let mut out = io::stdout().lock();
            out.write_all(display::KITTY_PUSH)?;
            out.write_all(b"\x1b[H\x1b[2J")?;
            out.flush()?;
        }
        Ok(Terminal { _private: () })
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        restore();
    }
}

/// Writes session output to stdout: through the display when codex-attach
/// draws on the terminal (`replay`: old output, whose queries are
/// dropped), else as it is.
pub fn show(out: &mut impl Write, bytes: &[u8], replay: bool) -> io::Result<()> {
    let shown = match saved().as_mut().and_then(|s| s.display.as_mut()) {
        Some(display) => display.show(bytes, replay),
        None => bytes.to_vec(),
    };
    out.write_all(&shown)?;
    out.flush()
}

/// The terminal changed size.
pub fn resized(size: (u16, u16)) {
    if let Some(display) = saved().as_mut().and_then(|s| s.display.as_mut()) {
        display.resize(size);
    }
}

/// Puts the terminal back as it was (once): the modes the program may have
/// set, the cursor on a fresh line, then the settings.
pub fn restore() {
    let saved = saved().take();
    if let Some(Saved { termios, display }) = saved {
        if let Some(mut display) = display {
            let mut out = io::stdout();
            let _ = out.write_all(&display.restore());
            let _ = out.flush();
        }
        let _ = tcsetattr(stdin_fd(), SetArg::TCSADRAIN, &termios);
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

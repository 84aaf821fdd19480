//! The command line of codex-attach.

use ::cli::complete::{sessions, Sessions};
use ::cli::usage::count;
use ::cli::{Codes, Failure, HostArg, RootArg, Tool};
use clap::{ArgMatches, Parser};
use shared::Selector;

use crate::keys::{self, DetachKeys};

/// Attach the terminal to a running background session, and detach again.
///
/// In a tty session every key goes to the program; detach with ctrl-\ (see
/// --detach-keys), however the terminal encodes it. With stdin not a
/// terminal, its bytes go to the session and codex-attach detaches at its
/// end (`printf 'y\n' | codex-attach ID`), writing nothing to a terminal.
/// Scripts send text and keys with --send and --keys.
#[derive(Debug, Parser)]
#[command(
    name = "codex-attach",
    version,
    after_help = "Exit status: 0 detached; the session's exit code when it ends while attached (128+N for signal N); 125 when codex-attach fails (usage errors and a session that is not running included)."
)]
pub struct Cli {
    /// The session: an id, a unique id prefix or a row number, as ID@DEST on another host [default: the newest running session].
    #[arg(value_name = "SELECTOR", add = sessions(Sessions::Running))]
    pub selector: Option<String>,

    #[command(flatten)]
    pub root: RootArg,

    #[command(flatten)]
    pub host: HostArg,

    /// The keys that detach, such as ctrl-\ (the default), ctrl-p,ctrl-q or ctrl-a,d.
    #[arg(long, value_name = "KEYS", default_value = "ctrl-\\", value_parser = DetachKeys::parse)]
    pub detach_keys: DetachKeys,

    /// Watch only: send no input (the terminal still goes to raw mode; the detach keys, ctrl-D and ctrl-C detach).
    #[arg(long)]
    pub no_stdin: bool,

    /// Send TEXT as typed input, then detach; stdin is not read and nothing is written to the terminal (repeatable).
    #[arg(long, value_name = "TEXT")]
    pub send: Vec<String>,

    /// Send keys after any --send text, then detach: comma-separated names such as enter, tab, esc, up, ctrl-c (repeatable).
    #[arg(long, value_name = "KEYS", value_parser = keys::named)]
    pub keys: Vec<Vec<u8>>,

    /// Close the session's input after what was sent (piped stdin, --send, --keys): a --stdin session's command sees the end of its input, a tty session gets its end-of-file character (ctrl-D).
    #[arg(long)]
    pub eof: bool,

    /// Lines of recent output to show first in a pipe session.
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = count::<usize>)]
    pub replay: usize,
}

impl Tool for Cli {
    /// codex-attach passes on the session's exit code: its own failures,
    /// usage errors included, exit 125 so they cannot be taken for it.
    fn codes(_: &ArgMatches) -> Codes {
        Codes::PASSING_ON
    }

    const QUIET_BROKEN_PIPE: bool = false;

    fn check(&self) -> Result<(), Failure> {
        if let Some(s) = &self.selector {
            let (s, _) = ::cli::host::split_selector(s).map_err(Failure::usage)?;
            Selector::parse(s, true).map_err(Failure::usage)?;
        }
        Ok(())
    }
}

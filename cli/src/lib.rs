//! Being a command-line tool, in one place for the five `codex-*` tools.
//!
//! The format crate (`shared`) never prints and never exits; this crate is
//! where the tools' common command-line behaviour lives:
//!
//! - [`run`]: parse, check, act, and turn the outcome into an exit status
//!   (each tool's `main` is `std::process::exit(cli::run(tool::run))`);
//! - [`Failure`]: an error that carries its exit status, as uucore's
//!   `UError::code` does;
//! - [`RootArg`]: the `--root` flag every tool flattens in, and opening the
//!   root it names;
//! - [`usage`]: clap's errors folded onto one line, and value parsers whose
//!   errors say what form is expected;
//! - [`term`]: the terminal's size and whether to colour;
//! - [`text`]: session data escaped for people (no control character
//!   reaches the terminal);
//! - [`host`]: `-H/--host DEST`, `$CODEX_HOST`, the hosts file and
//!   `ID@DEST` selectors; [`ssh`]: running a tool on another host;
//! - [`complete`]: shell completions (flags and session ids) and man pages,
//!   generated from the clap definitions.

#![deny(missing_docs)]

pub mod complete;
pub mod exit;
pub mod host;
pub mod root;
pub mod ssh;
pub mod term;
pub mod text;
pub mod usage;

pub use exit::{run, Codes, Failure, Tool};
pub use host::{Dest, HostArg};
pub use root::RootArg;

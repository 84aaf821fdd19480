//! Shell completions and man pages, generated from the clap definitions.
//!
//! Completion follows clap's `COMPLETE=$SHELL` convention: `COMPLETE=bash
//! codex-ps` prints a script that registers the completion, and the shell
//! then asks the tool itself for candidates (`COMPLETE=bash codex-ps --
//! WORDS...`), so flags and session ids are always those of the installed
//! version. Session ids are listed from the root in use: the `--root` on
//! the command line being completed, else the environment's.
//!
//! `--generate man` (hidden) prints the tool's man page in roff.

use std::ffi::OsString;
use std::io::{self, Write};

use clap::{Arg, CommandFactory};
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};
use clap_complete::env::CompleteEnv;
use shared::{Access, Status};

use crate::RootArg;

/// The id of the hidden `--generate` argument.
pub const GENERATE: &str = "generate";

/// Which sessions a selector argument completes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sessions {
    /// Every session (codex-ps, codex-tail, codex-rm).
    All,
    /// Running sessions only (codex-attach).
    Running,
}

/// Completes an argument with the ids of `which` sessions, newest first:
/// `#[arg(add = cli::complete::sessions(Sessions::All))]`.
pub fn sessions(which: Sessions) -> ArgValueCandidates {
    ArgValueCandidates::new(move || candidates(which))
}

fn candidates(which: Sessions) -> Vec<CompletionCandidate> {
    // The words being completed follow the `--` the shell script passes.
    let words: Vec<OsString> = std::env::args_os()
        .skip_while(|a| a != "--")
        .skip(1)
        .collect();
    let Ok(root) = RootArg::from_words(&words).open(Access::Read) else {
        return Vec::new();
    };
    let Ok(sessions) = root.list() else {
        return Vec::new();
    };
    sessions
        .into_iter()
        .filter(|s| which == Sessions::All || s.status == Status::Running)
        .map(|s| CompletionCandidate::new(s.id.as_str()).help(Some(s.status.as_str().into())))
        .collect()
}

/// Answers a shell's completion request (`COMPLETE` set); `None` when this
/// is an ordinary run.
pub fn respond<T: CommandFactory>(args: &[OsString]) -> Option<i32> {
    let cwd = std::env::current_dir().ok();
    match CompleteEnv::with_factory(T::command).try_complete(args.iter().cloned(), cwd.as_deref()) {
        Ok(true) => Some(0),
        Ok(false) => None,
        Err(e) => {
            let _ = e.print();
            Some(1)
        }
    }
}

/// `cmd` with the hidden `--generate WHAT` argument.
pub fn with_generate(cmd: clap::Command) -> clap::Command {
    cmd.arg(
        Arg::new(GENERATE)
            .long(GENERATE)
            .value_name("WHAT")
            .value_parser(["man"])
            .hide(true),
    )
}

/// Prints what `--generate` asks for.
pub fn generate<T: CommandFactory>(what: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match what {
        "man" => clap_mangen::Man::new(T::command()).render(&mut out)?,
        _ => unreachable!("clap checks the values of --generate"),
    }
    out.flush()
}

//! From a command line to an exit status: [`run`] parses, checks, acts and
//! reports, and [`Failure`] is an error that carries the status it calls
//! for.
//!
//! Exit statuses (see the README): 0 success, 1 failure, 2 usage error;
//! tools that pass on a session's exit code (codex-tail `-f`,
//! codex-attach) exit 125 for their own failures and usage errors, as
//! `docker run` does; codex-spawn exits 126/127 when the command cannot be
//! run. A write to a closed pipe (`codex-ps | head -1`) ends quietly with
//! status 0 (see [`Tool::QUIET_BROKEN_PIPE`]).

use std::ffi::OsString;
use std::fmt::Display;
use std::io::{self, Write};

use clap::{ArgMatches, Parser};

use crate::{complete, usage};

/// The exit statuses of a tool's own failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codes {
    /// A failure while acting.
    pub failure: i32,
    /// A command line that does not make sense.
    pub usage: i32,
}

impl Codes {
    /// 1 for a failure, 2 for a usage error.
    pub const ORDINARY: Codes = Codes {
        failure: 1,
        usage: 2,
    };
    /// 125 for both, for a tool whose other statuses are a session's.
    pub const PASSING_ON: Codes = Codes {
        failure: 125,
        usage: 125,
    };
}

/// A tool's command line: its clap definition plus what [`run`] needs to
/// know beyond it.
pub trait Tool: Parser {
    /// The statuses of this tool's own failures for the command line
    /// `matches` (read leniently when the command line does not parse, so
    /// that `codex-tail -f --bogus` still exits 125).
    fn codes(_matches: &ArgMatches) -> Codes {
        Codes::ORDINARY
    }

    /// Whether a write to a closed pipe ends the tool quietly with status 0
    /// (`codex-ps | head -1`): true for tools whose only pipe is their
    /// output; codex-attach's broken connection is a failure.
    const QUIET_BROKEN_PIPE: bool = true;

    /// Checks what clap cannot, before anything is read or touched.
    fn check(&self) -> Result<(), Failure> {
        Ok(())
    }

    /// A better message than clap's for a command line that does not
    /// parse, where the tool has one.
    fn explain(_error: &clap::Error, _args: &[OsString]) -> Option<String> {
        None
    }
}

/// What went wrong, and how to exit for it.
#[derive(Debug)]
pub struct Failure {
    kind: Kind,
    error: anyhow::Error,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Usage,
    Failure,
    Code(i32),
}

impl Failure {
    /// A usage error: `message` names the problem.
    pub fn usage(message: impl Display) -> Failure {
        Failure {
            kind: Kind::Usage,
            error: anyhow::anyhow!("{message}"),
        }
    }

    /// A failure with its own exit status (codex-spawn's 126 and 127).
    pub fn with_code(code: i32, error: anyhow::Error) -> Failure {
        Failure {
            kind: Kind::Code(code),
            error,
        }
    }

    /// Prints the error on one line and returns the exit status.
    fn report<T: Tool>(self, name: &str, codes: Codes) -> i32 {
        if T::QUIET_BROKEN_PIPE && is_broken_pipe(&self.error) {
            return 0;
        }
        // Errors quote session data (ids read from stdin, records, paths):
        // escaped here, once, for every tool.
        let message = crate::text::line(&format!("{:#}", self.error).replace('\n', " "));
        let (line, code) = match self.kind {
            Kind::Usage => (format!("{name}: {message} (try --help)"), codes.usage),
            Kind::Failure => (format!("{name}: {message}"), codes.failure),
            Kind::Code(code) => (format!("{name}: {message}"), code),
        };
        let _ = writeln!(io::stderr(), "{line}");
        code
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure {
            kind: Kind::Failure,
            error,
        }
    }
}

/// The errors a tool meets, taken as failures (exit 1, or 125) by `?`.
macro_rules! failure_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Failure {
            fn from(error: $t) -> Self {
                anyhow::Error::from(error).into()
            }
        }
    )*};
}
failure_from!(shared::Error, io::Error, serde_json::Error);

/// Runs tool `T`: answers a shell's completion request, or parses the
/// command line (help and version print in full on stdout), checks it,
/// runs `act` and returns the exit status for `main` to exit with. `act`
/// returns the status of success (0, or a session's exit code).
pub fn run<T: Tool>(act: impl FnOnce(T) -> Result<i32, Failure>) -> i32 {
    // Run by another host's tool over ssh: the exit status also goes in
    // band, since ssh's own failures share its 255 (see `crate::ssh`).
    let remote = crate::ssh::take_remote_mode();
    let code = run_tool::<T>(act);
    if remote {
        crate::ssh::write_trailer(code);
    }
    code
}

fn run_tool<T: Tool>(act: impl FnOnce(T) -> Result<i32, Failure>) -> i32 {
    let args: Vec<OsString> = std::env::args_os().collect();
    let name = T::command().get_name().to_string();
    if let Some(code) = complete::respond::<T>(&args) {
        return code;
    }
    let matches = match complete::with_generate(T::command()).try_get_matches_from(&args) {
        Ok(m) => m,
        Err(e) if !e.use_stderr() => {
            // Help and version: in full, on stdout.
            let _ = e.print();
            return 0;
        }
        Err(e) => {
            let codes = T::command()
                .ignore_errors(true)
                .try_get_matches_from(&args)
                .map_or(Codes::ORDINARY, |m| T::codes(&m));
            let message = T::explain(&e, &args).unwrap_or_else(|| usage::one_line(&e));
            return Failure::usage(message).report::<T>(&name, codes);
        }
    };
    if let Some(what) = matches.get_one::<String>(complete::GENERATE) {
        return complete::generate::<T>(what).map_or_else(
            |e| Failure::from(e).report::<T>(&name, Codes::ORDINARY),
            |()| 0,
        );
    }
    let codes = T::codes(&matches);
    let outcome = T::from_arg_matches(&matches)
        .map_err(|e| Failure::usage(usage::one_line(&e)))
        .and_then(|cli| cli.check().map(|()| cli))
        .and_then(act);
    match outcome {
        Ok(code) => code,
        Err(failure) => failure.report::<T>(&name, codes),
    }
}

/// Whether `e` is a write to a closed pipe, which ends a tool quietly.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .and_then(|e| e.io_error_kind())
                .is_some_and(|k| k == io::ErrorKind::BrokenPipe)
    })
}

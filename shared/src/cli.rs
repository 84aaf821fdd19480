//! The command lines of the tools: parsing with clap, and usage errors on
//! one line.
//!
//! clap reports a usage error over several lines (`error: ...`, a blank
//! line, `Usage:` lines, a pointer at `--help`). The tools report every
//! error as one line, `codex-ps: what went wrong`, so usage errors are
//! folded into that form here: `codex-ps: unexpected argument '--bogus'
//! found (try --help)`. Help and version still print in full on stdout.
//!
//! This is the one module of the crate that prints and exits: it is what
//! every binary's `main` calls first, before any session is touched.

use std::fmt::Display;
use std::io::Write;

use clap::{CommandFactory, Parser};

/// The exit status of a usage error, for tools that do not pass on a
/// session's exit code.
pub const USAGE_EXIT: i32 = 2;

/// Parses the command line of `T`. `--help` and `--version` print on stdout
/// and exit 0; any other error prints one line on stderr and exits
/// [`USAGE_EXIT`].
pub fn parse<T: Parser>() -> T {
    parse_or_exit(USAGE_EXIT)
}

/// [`parse`], exiting with `code` on a usage error (codex-attach and
/// `codex-tail -f` exit 125, so their own failures are never taken for a
/// session's exit code).
pub fn parse_or_exit<T: Parser>(code: i32) -> T {
    match T::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // Help and version: in full, on stdout.
            let _ = e.print();
            std::process::exit(0);
        }
        Err(e) => exit_with(&name::<T>(), one_line(&e), code),
    }
}

/// Reports a usage error found after parsing (`message` names the problem)
/// on one line, as [`parse`] does, and exits [`USAGE_EXIT`].
pub fn usage_error<T: CommandFactory>(message: impl Display) -> ! {
    exit_with(&name::<T>(), message.to_string(), USAGE_EXIT)
}

/// The error of `e` on one line, without clap's `error:` prefix, its usage
/// lines and its pointer at `--help`: lists are joined with commas, tips
/// follow after a semicolon.
pub fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    let mut parts = Vec::new();
    for paragraph in text.split("\n\n") {
        let lines: Vec<&str> = paragraph
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let Some((first, rest)) = lines.split_first() else {
            continue;
        };
        if first.starts_with("Usage:") || first.starts_with("For more information") {
            continue;
        }
        let mut part = first.to_string();
        if !rest.is_empty() {
            part.push(' ');
            part.push_str(&rest.join(if first.ends_with(':') { ", " } else { " " }));
        }
        parts.push(part);
    }
    if parts.is_empty() {
        // Nothing left of clap's text: say what kind of error it was.
        parts.push(
            e.kind()
                .as_str()
                .unwrap_or("invalid command line")
                .to_string(),
        );
    }
    parts.join("; ")
}

/// The program name `T`'s command line declares.
fn name<T: CommandFactory>() -> String {
    T::command().get_name().to_string()
}

/// Prints `NAME: MESSAGE (try --help)` on stderr and exits `code`.
fn exit_with(name: &str, message: String, code: i32) -> ! {
    let message = message.replace('\n', " ");
    let _ = writeln!(std::io::stderr(), "{name}: {message} (try --help)");
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Parser)]
    #[command(name = "demo")]
    struct Demo {
        #[arg(long)]
        json: bool,
        #[arg(long, value_parser = clap::value_parser!(u32))]
        count: Option<u32>,
        #[arg(long, conflicts_with = "json")]
        quiet: bool,
        #[command(subcommand)]
        mode: Option<Mode>,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Mode {
        Run { prompt: String, second: String },
    }

    fn error(args: &[&str]) -> String {
        let e = Demo::try_parse_from([&["demo"], args].concat()).unwrap_err();
        one_line(&e)
    }

    #[test]
    fn every_kind_of_usage_error_fits_on_one_line() {
        for (args, want) in [
            (&["--bogus"][..], "unexpected argument '--bogus' found"),
            (&["--jsn"], "tip: a similar argument exists: '--json'"),
            (&["--count", "x"], "invalid value 'x' for '--count <COUNT>'"),
            (&["--json", "--quiet"], "cannot be used with"),
            (&["run"], "not provided: <PROMPT>, <SECOND>"),
            (&["--count"], "a value is required for '--count <COUNT>'"),
        ] {
            let line = error(args);
            assert!(!line.contains('\n'), "{args:?}: {line:?}");
            assert!(line.contains(want), "{args:?}: {line:?} lacks {want:?}");
            assert!(
                !line.contains("Usage") && !line.contains("--help") && !line.contains("error:"),
                "{args:?}: {line:?}"
            );
        }
    }
}

//! The command line of codex-ps.

use ::cli::complete::{sessions, Sessions};
use ::cli::usage::count;
use ::cli::{Failure, HostArg, RootArg, Tool};
use clap::Parser;
use shared::Selector;

use crate::filter::Filter;

/// List background sessions, newest first.
///
/// Row numbers (#) count from 0 for the newest session and stay the same
/// when filters hide rows, so other tools can take them as selectors.
#[derive(Debug, Parser)]
#[command(
    name = "codex-ps",
    version,
    after_help = "Filters: status=starting|running|exited|failed|lost|corrupt, kind=exec|repl|cmd, label=KEY, label=KEY=VALUE, exit=N.\nExit status: 0 listed (even with corrupt sessions); 1 failure; 2 usage error."
)]
pub struct Cli {
    /// Sessions to show: ids, unique id prefixes, or row numbers, each as ID@DEST for a session of another host [default: all].
    #[arg(value_name = "SELECTOR", add = sessions(Sessions::All))]
    pub selectors: Vec<String>,

    #[command(flatten)]
    pub root: RootArg,

    #[command(flatten)]
    pub host: HostArg,

    /// Print ids only, one per line.
    #[arg(short, long, conflicts_with = "json")]
    pub quiet: bool,

    /// Print one JSON object per session per line.
    #[arg(long)]
    pub json: bool,

    /// Show only sessions matching KEY=VALUE (repeatable; all must match).
    #[arg(short, long = "filter", value_name = "KEY=VALUE", value_parser = Filter::parse)]
    pub filters: Vec<Filter>,

    /// Show only the N newest sessions (after filtering).
    #[arg(short = 'n', long = "last", value_name = "N", value_parser = count::<usize>)]
    pub last: Option<usize>,

    /// Do not cut the PROMPT column to the terminal's width.
    #[arg(long)]
    pub no_trunc: bool,
}

impl Tool for Cli {
    fn check(&self) -> Result<(), Failure> {
        for s in &self.selectors {
            let (s, _) = ::cli::host::split_selector(s).map_err(Failure::usage)?;
            Selector::parse(s, true).map_err(Failure::usage)?;
        }
        Ok(())
    }
}

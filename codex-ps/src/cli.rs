//! The command line of codex-ps.

use std::path::PathBuf;

use clap::Parser;

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
    /// Sessions to show: ids, unique id prefixes, or row numbers [default: all].
    #[arg(value_name = "SELECTOR")]
    pub selectors: Vec<String>,

    /// The session root [default: $CODEX_BACKGROUND_DIR, else $CODEX_HOME/background, else ~/.codex/background].
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,

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
    #[arg(short = 'n', long = "last", value_name = "N")]
    pub last: Option<usize>,

    /// Do not cut the PROMPT column to the terminal's width.
    #[arg(long)]
    pub no_trunc: bool,
}

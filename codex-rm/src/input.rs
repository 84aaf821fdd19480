//! Where the ids come from: the arguments, or stdin (`-`, or none given).

use std::io::{self, Read};

use anyhow::Context;

use crate::cli::Cli;

/// The selectors to act on, in order.
pub fn selectors(cli: &Cli) -> anyhow::Result<Vec<String>> {
    let from_stdin = cli.selectors.is_empty() || cli.selectors.iter().any(|s| s == "-");
    let mut stdin_words = Vec::new();
    if from_stdin {
        let mut text = String::new();
        io::stdin()
            .lock()
            .read_to_string(&mut text)
            .context("reading ids from stdin")?;
        stdin_words = text.split_whitespace().map(str::to_string).collect();
    }
    let mut out = Vec::new();
    for s in &cli.selectors {
        if s == "-" {
            out.append(&mut stdin_words);
        } else {
            out.push(s.clone());
        }
    }
    out.append(&mut stdin_words);
    Ok(out)
}

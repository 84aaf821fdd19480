//! Usage errors on one line, and value parsers whose errors say what form
//! a flag expects.
//!
//! clap reports a usage error over several lines (`error: ...`, a blank
//! line, `Usage:` lines, a pointer at `--help`). The tools report every
//! error as one line, `codex-ps: what went wrong (try --help)`, so usage
//! errors are folded into that form here. clap's tip to put `--` before a
//! value that looks like a flag is dropped: for codex-spawn it would run a
//! command named after the flag, and for a number such as `-n -1` the value
//! is wrong either way.

use std::str::FromStr;

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
            .filter(|l| !l.is_empty() && !l.starts_with("tip: to pass"))
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
    parts.join("; ").replace('\n', " ")
}

/// A value parser for a count (`-n 10`): a whole number, the error saying
/// so instead of Rust's `invalid digit found in string`.
pub fn count<T: FromStr>(s: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| "expected a whole number, such as 10".to_string())
}

/// A value parser for a duration (`90s`, `10m`, `2h`).
pub fn duration(s: &str) -> Result<std::time::Duration, String> {
    shared::units::parse_duration(s).map_err(|e| e.to_string())
}

/// A value parser for a size (`10M`, `1GiB`).
pub fn size(s: &str) -> Result<u64, String> {
    shared::units::parse_size(s).map_err(|e| e.to_string())
}

/// A value parser for `KEY=VALUE` with a non-empty key.
pub fn pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err("expected KEY=VALUE with a non-empty KEY".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    #[command(name = "demo")]
    struct Demo {
        #[arg(long)]
        json: bool,
        #[arg(long, value_parser = count::<u32>)]
        count: Option<u32>,
        #[arg(long, conflicts_with = "json")]
        quiet: bool,
        #[command(subcommand)]
        mode: Option<Mode>,
        #[arg(last = true)]
        command: Vec<String>,
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
            (
                &["--count", "x"],
                "invalid value 'x' for '--count <COUNT>': expected a whole number",
            ),
            (&["--count", "-1"], "unexpected argument '-1' found"),
            (&["--json", "--quiet"], "cannot be used with"),
            (&["run"], "not provided: <PROMPT>, <SECOND>"),
            (&["--count"], "a value is required for '--count <COUNT>'"),
        ] {
            let line = error(args);
            assert!(!line.contains('\n'), "{args:?}: {line:?}");
            assert!(line.contains(want), "{args:?}: {line:?} lacks {want:?}");
            assert!(
                !line.contains("Usage")
                    && !line.contains("--help")
                    && !line.contains("error:")
                    && !line.contains("invalid digit")
                    && !line.contains("'--'")
                    && !line.contains("-- "),
                "{args:?}: {line:?}"
            );
        }
    }
}

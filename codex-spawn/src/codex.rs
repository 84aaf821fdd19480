//! Codex's own arguments, as `codex` 0.169 takes them: one parser for
//! `exec`, `exec --resume` and `repl`, so that `exec -m MODEL "prompt"` and
//! `exec "prompt" -m MODEL` mean the same, a flag is never taken for the
//! prompt, and a resumed session can take over the options of the one it
//! continues.
//!
//! Words are read in order: a known option (with its value, when it takes
//! one: `-m MODEL`, `-mMODEL`, `--model MODEL`, `--model=MODEL`), or the
//! prompt (the one word that is not an option; `-` is the prompt read from
//! stdin). An unknown option is refused rather than guessed at, since
//! whether it takes a value decides which word is the prompt; words after
//! a `--` are passed to codex as they are, for options newer than this
//! table.

use std::fmt;

/// One option of codex's command line.
struct Spec {
    /// The long name, without `--`.
    long: &'static str,
    /// The short letter, if any.
    short: Option<char>,
    /// Whether it takes a value.
    value: bool,
}

const fn opt(long: &'static str, short: Option<char>, value: bool) -> Spec {
    Spec { long, short, value }
}

/// The options of `codex` and `codex exec` (0.169), from their `--help`.
const SPECS: &[Spec] = &[
    opt("config", Some('c'), true),
    opt("enable", None, true),
    opt("disable", None, true),
    opt("strict-config", None, false),
    opt("image", Some('i'), true),
    opt("model", Some('m'), true),
    opt("oss", None, false),
    opt("local-provider", None, true),
    opt("profile", Some('p'), true),
    opt("sandbox", Some('s'), true),
    opt("approve-for-me", None, false),
    opt("dangerously-bypass-approvals-and-sandbox", None, false),
    opt("dangerously-bypass-hook-trust", None, false),
    opt("cd", Some('C'), true),
    opt("worktree", None, false),
    opt("add-dir", None, true),
    opt("ask-for-approval", Some('a'), true),
    opt("search", None, false),
    opt("no-alt-screen", None, false),
    opt("no-daemon", None, false),
    opt("remote", None, true),
    opt("remote-auth-token-env", None, true),
    opt("thread-source", None, true),
    opt("cyber-access-program", None, true),
    opt("skip-git-repo-check", None, false),
    opt("trust", None, false),
    opt("ephemeral", None, false),
    opt("ignore-user-config", None, false),
    opt("ignore-rules", None, false),
    opt("output-schema", None, true),
    opt("color", None, true),
    opt("output-last-message", Some('o'), true),
];

/// Options that may be given more than once and add up (each `-c` sets
/// its own key; each `--enable` its own feature).
const KEYED: &[&str] = &["config", "enable", "disable"];

/// One option as given, normalised to `--long` or `--long=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodexOption {
    long: &'static str,
    value: Option<String>,
}

impl CodexOption {
    /// What a later option of the same identity replaces: the long name,
    /// and for `-c`/`--enable`/`--disable` the key it sets.
    fn identity(&self) -> String {
        match (&self.value, KEYED.contains(&self.long)) {
            (Some(v), true) => {
                let key = if self.long == "config" {
                    v.split_once('=').map_or(v.as_str(), |(k, _)| k).trim()
                } else {
                    v.as_str()
                };
                format!("{}:{key}", self.long)
            }
            _ => self.long.to_string(),
        }
    }

    /// The word codex gets. `--long=VALUE` keeps a value from ever being
    /// read as another option's, and `--image=F` from swallowing the next
    /// word (codex's `-i` takes several).
    pub fn word(&self) -> String {
        match &self.value {
            Some(v) => format!("--{}={v}", self.long),
            None => format!("--{}", self.long),
        }
    }
}

/// Codex's arguments, read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodexArgs {
    /// The options, in the order given.
    pub options: Vec<CodexOption>,
    /// The prompt, if one was given.
    pub prompt: Option<String>,
    /// Words after `--`, passed to codex as they are.
    pub verbatim: Vec<String>,
}

/// Why codex's arguments could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgsError {
    /// An option codex does not have (or this table does not know).
    Unknown(String),
    /// An option that takes a value, at the end.
    MissingValue(String),
    /// A second word that is not an option.
    SecondPrompt(String),
}

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgsError::Unknown(o) => write!(
                f,
                "unknown codex option '{o}' (give options codex-spawn does not know after --, with their values)"
            ),
            ArgsError::MissingValue(o) => write!(f, "codex option '{o}' needs a value"),
            ArgsError::SecondPrompt(w) => write!(
                f,
                "a second prompt '{w}': give the prompt as one argument (quote it)"
            ),
        }
    }
}

impl CodexArgs {
    /// Reads `words`: options anywhere, at most one prompt.
    pub fn parse(words: &[String]) -> Result<CodexArgs, ArgsError> {
        let mut args = CodexArgs::default();
        let mut words = words.iter();
        while let Some(w) = words.next() {
            if w == "--" {
                args.verbatim = words.cloned().collect();
                break;
            }
            let Some((spec, attached)) = lookup(w)? else {
                if args.prompt.is_some() {
                    return Err(ArgsError::SecondPrompt(w.clone()));
                }
                args.prompt = Some(w.clone());
                continue;
            };
            let value = match (spec.value, attached) {
                (false, _) => None,
                (true, Some(v)) => Some(v),
                (true, None) => Some(
                    words
                        .next()
                        .cloned()
                        .ok_or_else(|| ArgsError::MissingValue(w.clone()))?,
                ),
            };
            args.options.push(CodexOption {
                long: spec.long,
                value,
            });
        }
        Ok(args)
    }

    /// Whether option `long` was given.
    pub fn has(&self, long: &str) -> bool {
        self.options.iter().any(|o| o.long == long)
    }

    /// The words for codex's command line: the options, then what came
    /// after `--` (the prompt is placed by the caller).
    pub fn option_words(&self) -> Vec<String> {
        self.options
            .iter()
            .map(CodexOption::word)
            .chain(self.verbatim.iter().cloned())
            .collect()
    }

    /// The words a session's record keeps of these arguments (its
    /// `codex_options`): the options, then `--` and the words after it,
    /// so that [`CodexArgs::parse`] reads them back the same.
    pub fn recorded_words(&self) -> Vec<String> {
        let mut words: Vec<String> = self.options.iter().map(CodexOption::word).collect();
        if !self.verbatim.is_empty() {
            words.push("--".into());
            words.extend(self.verbatim.iter().cloned());
        }
        words
    }

    /// Adds the flag `--long` (one codex knows, taking no value).
    pub fn add_flag(&mut self, long: &str) {
        if let Some(spec) = SPECS.iter().find(|s| s.long == long && !s.value) {
            self.options.push(CodexOption {
                long: spec.long,
                value: None,
            });
        }
    }

    /// These arguments over `earlier`'s options: every earlier option
    /// whose identity is not given again is kept (first), then these.
    /// `--cd` and `-C` are never taken over: the session's directory is.
    pub fn over(&self, earlier: &CodexArgs) -> CodexArgs {
        let given: Vec<String> = self.options.iter().map(CodexOption::identity).collect();
        let mut options: Vec<CodexOption> = earlier
            .options
            .iter()
            .filter(|o| o.long != "cd" && !given.contains(&o.identity()))
            .cloned()
            .collect();
        options.extend(self.options.iter().cloned());
        let verbatim = if self.verbatim.is_empty() {
            earlier.verbatim.clone()
        } else {
            self.verbatim.clone()
        };
        CodexArgs {
            options,
            prompt: self.prompt.clone(),
            verbatim,
        }
    }
}

/// The option `word` names, with a value attached to it (`-mX`,
/// `--model=X`); `None` when the word is not an option (`-` included).
fn lookup(word: &str) -> Result<Option<(&'static Spec, Option<String>)>, ArgsError> {
    let unknown = || ArgsError::Unknown(word.to_string());
    if let Some(long) = word.strip_prefix("--") {
        let (name, value) = match long.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (long, None),
        };
        let spec = SPECS.iter().find(|s| s.long == name).ok_or_else(unknown)?;
        if value.is_some() && !spec.value {
            return Err(unknown());
        }
        return Ok(Some((spec, value)));
    }
    let Some(short) = word.strip_prefix('-').filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let mut chars = short.chars();
    let letter = chars.next().expect("not empty");
    let rest = chars.as_str();
    let spec = SPECS
        .iter()
        .find(|s| s.short == Some(letter))
        .ok_or_else(unknown)?;
    match (spec.value, rest) {
        (_, "") => Ok(Some((spec, None))),
        (true, v) => Ok(Some((
            spec,
            Some(v.strip_prefix('=').unwrap_or(v).to_string()),
        ))),
        (false, _) => Err(unknown()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    fn parse(w: &[&str]) -> Result<CodexArgs, ArgsError> {
        CodexArgs::parse(&words(w))
    }

    #[test]
    fn options_before_or_after_the_prompt_mean_the_same() {
        let a = parse(&["-m", "gpt-x", "fix it"]).unwrap();
        let b = parse(&["fix it", "-m", "gpt-x"]).unwrap();
        let c = parse(&["--model=gpt-x", "fix it"]).unwrap();
        let d = parse(&["-mgpt-x", "fix it"]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a, d);
        assert_eq!(a.prompt.as_deref(), Some("fix it"));
        assert_eq!(a.option_words(), ["--model=gpt-x"]);
    }

    #[test]
    fn flags_are_never_the_prompt() {
        let a = parse(&["--no-daemon", "-m", "m1"]).unwrap();
        assert_eq!(a.prompt, None);
        assert_eq!(a.option_words(), ["--no-daemon", "--model=m1"]);
        assert_eq!(parse(&["-"]).unwrap().prompt.as_deref(), Some("-"));
    }

    #[test]
    fn what_cannot_be_read_is_refused() {
        assert!(matches!(
            parse(&["--bogus", "p"]),
            Err(ArgsError::Unknown(_))
        ));
        assert!(matches!(parse(&["-Z"]), Err(ArgsError::Unknown(_))));
        assert!(matches!(parse(&["--oss=yes"]), Err(ArgsError::Unknown(_))));
        assert!(matches!(
            parse(&["p", "-m"]),
            Err(ArgsError::MissingValue(_))
        ));
        assert!(matches!(
            parse(&["a", "b"]),
            Err(ArgsError::SecondPrompt(_))
        ));
        // After `--`, anything goes through as it is.
        let a = parse(&["p", "--", "--new-flag", "v"]).unwrap();
        assert_eq!(a.option_words(), ["--new-flag", "v"]);
    }

    #[test]
    fn a_resume_takes_over_the_options_not_given_again() {
        let earlier = parse(&[
            "-s",
            "workspace-write",
            "-c",
            "model_reasoning_effort=high",
            "-c",
            "a.b=1",
            "--skip-git-repo-check",
            "-m",
            "old",
            "-C",
            "/elsewhere",
        ])
        .unwrap();
        let now = parse(&["-m", "new", "-c", "a.b = 2", "next"]).unwrap();
        let merged = now.over(&earlier);
        assert_eq!(
            merged.option_words(),
            [
                "--sandbox=workspace-write",
                "--config=model_reasoning_effort=high",
                "--skip-git-repo-check",
                "--model=new",
                "--config=a.b = 2",
            ]
        );
        assert_eq!(merged.prompt.as_deref(), Some("next"));
    }
}

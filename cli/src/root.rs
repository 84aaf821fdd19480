//! `--root DIR`, the same flag with the same help in every tool, and
//! opening the root it names (else `$CODEX_BACKGROUND_DIR`, else
//! `$CODEX_HOME/background`, else `~/.codex/background`).

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Context;
use shared::{Access, Root};

/// The `--root` flag, flattened into every tool's command line.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RootArg {
    /// The session root [default: $CODEX_BACKGROUND_DIR, else $CODEX_HOME/background, else ~/.codex/background].
    #[arg(long = "root", value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub path: Option<PathBuf>,
}

impl RootArg {
    /// Finds the root and opens it for `access` (checking who owns it and
    /// who may write to it).
    pub fn open(&self, access: Access) -> anyhow::Result<Root> {
        let path =
            shared::root::resolve_path(self.path.as_deref()).context("finding the session root")?;
        Root::open(path, access).context("opening the session root")
    }

    /// The `--root` given among the words of a command line being
    /// completed (`--root DIR` or `--root=DIR`), if any.
    pub fn from_words(words: &[OsString]) -> RootArg {
        let mut path = None;
        let mut words = words.iter().take_while(|w| *w != "--");
        while let Some(w) = words.next() {
            if w == "--root" {
                path = words.next().map(PathBuf::from);
            } else if let Some(p) = w.to_str().and_then(|w| w.strip_prefix("--root=")) {
                path = Some(PathBuf::from(p));
            }
        }
        RootArg { path }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_root_in_either_form() {
        let words = |w: &[&str]| w.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            RootArg::from_words(&words(&["codex-ps", "--root", "/r", "x"])).path,
            Some("/r".into())
        );
        assert_eq!(
            RootArg::from_words(&words(&["codex-ps", "--root=/s"])).path,
            Some("/s".into())
        );
        assert_eq!(
            RootArg::from_words(&words(&["codex-ps", "--", "--root", "/t"])).path,
            None
        );
        assert_eq!(RootArg::from_words(&words(&["codex-ps"])).path, None);
    }
}

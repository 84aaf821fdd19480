//! The commands a session runs when it ends or its agent changes state
//! (`codex-spawn --on-exit CMD`, `--on-state CMD`), as the record keeps
//! them, and the file their output goes to.

use serde::{Deserialize, Serialize};

/// The log of the hooks' output and outcomes, in the session directory.
pub const LOG: &str = "hooks.log";
/// How long a hook may run when `--hook-timeout` is not given.
pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;

/// A session's hooks; each runs through `sh -c`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hooks {
    /// Run once the final record is written and the lock released.
    #[serde(default)]
    pub on_exit: Option<String>,
    /// Run at each change of the agent's state.
    #[serde(default)]
    pub on_state: Option<String>,
    /// How long a hook (and all it started) may run, in milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

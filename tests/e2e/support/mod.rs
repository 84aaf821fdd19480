//! The harness of the end-to-end tests, in the manner of ripgrep's
//! `tests/util.rs`: a fresh temporary directory per test whose `root`
//! subdirectory is the session root, a command wrapper that runs the built
//! binaries with a timeout and explains every failure in full, and a
//! cleanup that ends every process the test started, by pid.
//!
//! Every process a test starts carries `CODEX_E2E_TAG=<its temp dir>` in its
//! environment (codex-spawn passes the caller's environment on to the
//! supervisor and the command), so that the cleanup can find the leftovers
//! of this test, and only of this test, in `/proc/*/environ`. Nothing is
//! ever signalled by name.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

mod bin;
mod command;
mod foreign;
pub mod model;
mod procs;
mod root;
mod skip;
mod sshd;
mod tmux;

pub use bin::*;
pub use command::*;
pub use foreign::*;
pub use procs::*;
pub use root::*;
pub use skip::*;
pub use sshd::*;
pub use tmux::*;

/// How long a command may run before it is killed and the test fails.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a session may take to reach an expected status.
pub const WAIT: Duration = Duration::from_secs(15);
/// How often statuses are polled.
pub const POLL: Duration = Duration::from_millis(20);
/// The variable that marks every process of one test.
const TAG_VAR: &str = "CODEX_E2E_TAG";

/// Quotes `s` for a POSIX shell (for scripts and failure messages).
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A path as a `&str` (test paths are ASCII).
pub fn s(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// Whether `id` has the generated form `adjective-animal-xxxx`.
pub fn is_generated_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    parts.len() >= 3
        && parts[parts.len() - 1].len() == 4
        && parts[parts.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
}

/// Waits up to `timeout` for `cond`, polling every 20 ms; whether it held.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL);
    }
}

/// Waits up to `timeout` for file `path` to exist.
pub fn wait_file(path: &Path, timeout: Duration) -> bool {
    eventually(timeout, || path.exists())
}

/// The integer field `key` of a record, failing with the record.
pub fn int(rec: &Value, key: &str) -> i64 {
    rec[key]
        .as_i64()
        .unwrap_or_else(|| panic!("record field {key} is not a number: {rec:#}"))
}

/// The size of a file, 0 when it does not exist.
pub fn file_size(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |m| m.len())
}

/// A file's text, empty when it does not exist.
pub fn file_text(path: &Path) -> String {
    String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).into_owned()
}

/// Sets the modification time of `path` (a file or a directory) to `age`
/// ago, as if it had been left there that long.
pub fn backdate(path: &Path, age: Duration) {
    let when = std::time::SystemTime::now() - age;
    fs::File::open(path)
        .and_then(|f| f.set_modified(when))
        .unwrap_or_else(|e| panic!("backdating {}: {e}", path.display()));
}

/// Whether `name` is an executable on PATH.
pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            fs::metadata(Path::new(&d).join(name))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// The agent summary of session `id`, as `codex-ps --json` prints it.
pub fn ps_agent(t: &TestRoot, id: &str) -> Value {
    let out = t.tool("codex-ps", &["--json", id]);
    out.expect_success();
    let row: Value = serde_json::from_str(out.stdout_str().trim())
        .unwrap_or_else(|e| out.fail(&format!("not JSON: {e}")));
    row["agent"].clone()
}

//! The built binaries under test, found beside the test executable and
//! checked to be fresher than their sources.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The five tools.
pub const TOOLS: [&str; 5] = [
    "codex-spawn",
    "codex-ps",
    "codex-tail",
    "codex-attach",
    "codex-rm",
];

/// The directory of the built binaries: `current_exe()` is
/// `target/debug/deps/e2e-HASH`, the binaries are in `target/debug`.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/debug above target/debug/deps")
        .to_path_buf()
}

/// The built binary `name`, checked to exist and to be newer than every
/// source file it was built from (as listed in cargo's `NAME.d` beside it):
/// a stale binary would test old code.
pub fn bin(name: &str) -> PathBuf {
    static CHECKED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let path = bin_dir().join(name);
    if CHECKED.lock().unwrap().iter().any(|n| n == name) {
        return path;
    }
    let meta = fs::metadata(&path).unwrap_or_else(|_| {
        panic!(
            "{} not found: run `cargo build --workspace` first",
            path.display()
        )
    });
    let built = meta.modified().expect("binary mtime");
    let deps = fs::read_to_string(path.with_extension("d")).unwrap_or_default();
    let sources = deps.split_once(": ").map_or("", |(_, s)| s);
    for src in sources.split_whitespace().map(Path::new) {
        if fs::metadata(src)
            .and_then(|m| m.modified())
            .is_ok_and(|m| m > built)
        {
            panic!(
                "{} is older than {}: run `cargo build --workspace` first",
                path.display(),
                src.display()
            );
        }
    }
    CHECKED.lock().unwrap().push(name.to_string());
    path
}

//! Tests that cannot run on this machine (no root, no vim...): never a
//! silent pass. In CI (`CI` set) a test that cannot run fails; elsewhere
//! it says loudly that it skipped, and returns.

use std::io::Write;

/// Whether this run is CI's, which must run every test: `CI` set, and
/// not to `false` or `0`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Says that (part of) the current test cannot run here because `why`:
/// a failure in CI; elsewhere a note on the process's stderr (written
/// directly, so that the test harness's capture does not hide it), after
/// which the caller returns (or leaves out the part).
pub fn skip(why: &str) {
    let current = std::thread::current();
    let test = current.name().unwrap_or("a test");
    if in_ci() {
        panic!("{test} cannot run here: {why}. CI is set, so this fails instead of skipping.");
    }
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED (in part or whole) {test}: {why} (with CI set this fails) ***"
    );
}

/// Whether program `name` is on PATH; when it is not, [`skip`]s saying
/// what it is needed for.
pub fn need_program(name: &str, for_what: &str) -> bool {
    if super::on_path(name) {
        return true;
    }
    skip(&format!(
        "{name} is not on PATH ({for_what}; scripts/test installs it)"
    ));
    false
}

//! Issue 14, "which processes belong to which session": a session started
//! from inside another is its own; a lost session's leftovers are found by
//! that session instance alone; a renamed machine is still this machine;
//! `-e` values reach the command, never the supervisor.

use std::time::Duration;

use serde_json::json;
use shared::Status;

use crate::support::*;

/// A script for an outer session: starts session `inner` (running `sleep
/// 300`) with the built codex-spawn, in the same root, then runs `rest`.
fn nesting_script(inner: &str, rest: &str) -> Vec<String> {
    let spawn = bin("codex-spawn");
    vec![
        "sh".into(),
        "-c".into(),
        format!(
            "{} -n {inner} -- sleep 300 >/dev/null || exit 9; {rest}",
            sh_quote(s(&spawn))
        ),
    ]
}

/// Waits until `id` runs, then returns its command's pid and its
/// supervisor's pid.
fn running_pids(t: &TestRoot, id: &str) -> (i32, i32) {
    t.wait_status(id, |s| s == Status::Running, WAIT);
    let rec = t.record(id);
    (int(&rec, "pid") as i32, int(&rec, "supervisor_pid") as i32)
}

/// Session `outer`, whose command starts session `inner` and then sleeps;
/// returns once both run, with inner's command and supervisor pids.
fn start_nested(t: &TestRoot) -> (i32, i32) {
    let argv = nesting_script("inner", "sleep 300");
    let mut args = vec!["-n", "outer", "--"];
    args.extend(argv.iter().map(String::as_str));
    t.spawn_id(&args);
    let inner = running_pids(t, "inner");
    assert!(eventually(WAIT, || {
        procs_running("outer", &["sleep", "300"]).len() == 1
    }));
    inner
}

/// Fails unless session `id` still runs, its supervisor and command alive.
fn assert_still_runs(t: &TestRoot, id: &str, pids: (i32, i32), after: &str) {
    let alive = is_alive(pids.0) && is_alive(pids.1);
    assert!(
        alive && t.status(id) == Status::Running,
        "{after}, session {id} was harmed (command {} alive: {}, supervisor {} alive: {}):\n{}",
        pids.0,
        is_alive(pids.0),
        pids.1,
        is_alive(pids.1),
        t.listing()
    );
}

#[test]
fn a_nested_session_outlives_the_end_and_the_cleanup_of_the_outer_one() {
    let t = TestRoot::new("nest-end");
    // The outer command leaves a sleep of its own behind and ends.
    let argv = nesting_script("inner", "sleep 300 & exit 0");
    let mut args = vec!["-n", "outer", "--"];
    args.extend(argv.iter().map(String::as_str));
    t.spawn_id(&args);
    let inner = running_pids(&t, "inner");

    // The outer session ends (its own leftover killed) without waiting for
    // the inner one, and the inner one is untouched.
    let rec = t.wait_ended("outer", WAIT);
    assert_eq!(rec["exit_code"], json!(0), "{}", t.listing());
    assert!(
        eventually(Duration::from_secs(3), || {
            procs_running("outer", &["sleep", "300"]).is_empty()
        }),
        "the outer session's own leftover still runs"
    );
    assert_still_runs(&t, "inner", inner, "after the outer command ended");
    t.tool("codex-rm", &["-f", "--grace", "1s", "inner"])
        .expect_success();
}

#[test]
fn removing_the_outer_session_with_force_leaves_the_nested_one_running() {
    let t = TestRoot::new("nest-rm");
    let inner = start_nested(&t);

    t.tool("codex-rm", &["-f", "--grace", "1s", "outer"])
        .expect_success();
    assert!(procs_running("outer", &["sleep", "300"]).is_empty());
    assert_still_runs(&t, "inner", inner, "after codex-rm -f outer");
    t.tool("codex-rm", &["-f", "--grace", "1s", "inner"])
        .expect_success();
}

#[test]
fn a_lost_sessions_leftovers_spare_a_nested_session_that_inherited_its_id() {
    let t = TestRoot::new("nest-lost");
    let inner = start_nested(&t);
    make_lost(&t, "outer");

    let out = t.tool("codex-rm", &["-f", "--grace", "1s", "outer"]);
    out.expect_success();
    out.check(
        procs_running("outer", &["sleep", "300"]).is_empty(),
        "the lost session's own sleep still runs",
    );
    assert_still_runs(&t, "inner", inner, "after codex-rm -f of the lost outer");
    t.tool("codex-rm", &["-f", "--grace", "1s", "inner"])
        .expect_success();
}

#[test]
fn a_lost_sessions_leftovers_spare_the_same_id_in_another_root() {
    let t = TestRoot::new("twin-root");
    let other = t.path().join("other-root");
    let spawn_in = |root: &std::path::Path| {
        t.command(bin("codex-spawn"))
            .args(["--root", s(root), "-n", "twin", "--", "sh", "-c"])
            .arg("sleep 300 & sleep 300; wait")
            .run()
            .id()
    };
    bin("codex-supervisor");
    spawn_in(t.root());
    spawn_in(&other);
    let rec = t.record("twin");
    let other_rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(other.join("twin").join("session.json")).unwrap())
            .unwrap();
    let theirs = (
        int(&other_rec, "pid") as i32,
        int(&other_rec, "supervisor_pid") as i32,
    );
    make_lost(&t, "twin");

    let out = t.tool("codex-rm", &["-f", "--grace", "1s", "twin"]);
    out.expect_success();
    out.check(
        !is_alive(int(&rec, "pid") as i32),
        "the lost session's command still runs",
    );
    out.check(
        is_alive(theirs.0) && is_alive(theirs.1),
        "codex-rm -f of a lost session killed the session of the same id in another root",
    );
    t.command(bin("codex-rm"))
        .args(["--root", s(&other), "-f", "--grace", "1s", "twin"])
        .run()
        .expect_success();
}

#[test]
fn a_machine_renamed_since_the_start_is_still_this_machine() {
    let t = TestRoot::new("renamed");
    // A running session, and a lost one whose command still runs, both
    // recorded under the machine's former name (same boot).
    let live = t.spawn_id(&["--", "sleep", "300"]);
    let lost = t.spawn_id(&["--", "sleep", "300"]);
    t.wait_status(&live, |s| s == Status::Running, WAIT);
    let lost_rec = make_lost(&t, &lost);
    for id in [&live, &lost] {
        let mut rec = t.record(id);
        rec["host"] = json!("the-former-name-of-this-machine");
        t.write_record(id, &rec);
    }
    let live_pid = int(&t.record(&live), "pid") as i32;
    let lost_pid = int(&lost_rec, "pid") as i32;

    let out = t.tool("codex-rm", &["-f", "--grace", "1s", &live, &lost]);
    out.expect_success();
    out.check(
        !t.session_dir(&live).exists() && !t.session_dir(&lost).exists(),
        "both sessions should be removed",
    );
    assert!(
        eventually(Duration::from_secs(2), || !is_alive(live_pid)
            && !is_alive(lost_pid)),
        "a command still runs"
    );
}

#[test]
fn env_values_reach_the_command_and_never_the_supervisor() {
    let t = TestRoot::new("env-only");
    let id = t.spawn_id(&[
        "-e",
        "MARKER=only-for-the-command",
        "-e",
        "TZ=Pacific/Kiritimati",
        "-e",
        "LD_PRELOAD=/nonexistent/preload.so",
        "--",
        "sh",
        "-c",
        "echo \"$MARKER $TZ\"; exec sleep 300",
    ]);
    let (command, supervisor) = running_pids(&t, &id);
    assert!(eventually(WAIT, || cmdline(command) == ["sleep", "300"]));
    for kv in [
        "MARKER=only-for-the-command",
        "TZ=Pacific/Kiritimati",
        "LD_PRELOAD=/nonexistent/preload.so",
    ] {
        assert!(has_env(command, kv), "the command lacks {kv}");
        assert!(
            !has_env(supervisor, kv),
            "the supervisor's own environment holds {kv}"
        );
    }
    assert!(
        environ(command)
            .iter()
            .all(|e| !e.starts_with(b"CODEX_SUPERVISOR_ENV_")),
        "the command sees the carriers of the values"
    );
    // Logged once the supervisor has read it (it may still be loading).
    assert!(
        eventually(WAIT, || String::from_utf8_lossy(&t.read(&id, "stdout.log"))
            .contains("only-for-the-command Pacific/Kiritimati")),
        "the command did not see its values: {:?}",
        String::from_utf8_lossy(&t.read(&id, "stdout.log"))
    );
    t.tool("codex-rm", &["-f", "--grace", "1s", &id])
        .expect_success();
}

//! End-to-end tests of codex-rm: the "Done when" items of issue 5 (every
//! removable state, a running session refused, `-f` leaving nothing
//! running, symlinks never followed, ids from a pipe, failures that do not
//! stop the others), then a terminal on stdin and row numbers.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{json, Value};
use shared::Status;

use crate::support::*;

/// Runs `codex-rm --root ROOT ARGS...` (stdin /dev/null).
fn rm(t: &TestRoot, args: &[&str]) -> Output {
    t.tool("codex-rm", args)
}

/// Fails unless no process of session `id` is left (allowing the kernel a
/// moment to turn a killed process into a zombie).
fn assert_nothing_left(id: &str) {
    // Generous: it returns at once when all is well, and a loaded 2-core
    // machine may take a while to let the killed processes go.
    eventually(Duration::from_secs(10), || live_session_pids(id).is_empty());
    let left = live_session_pids(id);
    assert!(
        left.is_empty(),
        "processes of {id} still run:\n{}",
        describe(&left)
    );
}

/// Ends the orphaned command of lost session `id` by its process group
/// (see [`end_orphans`]), then checks that nothing of it is left.
fn end_orphans_of(id: &str, pgid: i32) {
    end_orphans(id, pgid);
    assert_nothing_left(id);
}

/// Every line of stdout parsed as a `--json` outcome, checked to hold
/// exactly the fields id, removed, stopped and error, with their types.
fn outcomes(out: &Output) -> Vec<Value> {
    out.stdout_str()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| out.fail(&format!("not a JSON line: {l:?}: {e}")));
            let keys: BTreeSet<&str> = v
                .as_object()
                .map(|o| o.keys().map(String::as_str).collect())
                .unwrap_or_default();
            let typed = v["id"].is_string()
                && v["removed"].is_boolean()
                && v["stopped"].is_boolean()
                && (v["error"].is_null() || v["error"].is_string());
            if keys != BTreeSet::from(["id", "removed", "stopped", "error"]) || !typed {
                out.fail(&format!("not an {{id, removed, stopped, error}} line: {l}"));
            }
            v
        })
        .collect()
}

/// The outcome of a removal that worked.
fn removed(id: &str, stopped: bool) -> Value {
    json!({"id": id, "removed": true, "stopped": stopped, "error": null})
}

/// Fails unless stdout is exactly `ids`, one a line.
fn expect_ids(out: &Output, ids: &[&str]) {
    let want: String = ids.iter().map(|id| format!("{id}\n")).collect();
    out.check(
        out.stdout_str() == want,
        &format!("stdout is not the removed ids {ids:?}, one a line"),
    );
}

/// Makes finished session `id` read as failed: its record says starting,
/// and nobody holds the lock.
fn make_failed(t: &TestRoot, id: &str) {
    t.wait_ended(id, WAIT);
    let mut rec = t.record(id);
    for key in ["pid", "pgid", "started_at", "ended_at", "exit_code"] {
        rec[key] = Value::Null;
    }
    rec["state"] = json!("starting");
    t.write_record(id, &rec);
    assert_eq!(t.status(id), Status::Failed, "{}", t.listing());
}

// ---------------------------------------------------------------------
// What can be removed, and what is refused.
// ---------------------------------------------------------------------

#[test]
fn removes_exited_failed_lost_and_corrupt_sessions() {
    let t = TestRoot::new("rm-states");
    let exited = t.spawn_id(&["-n", "exited-job", "--", "sh", "-c", "echo bye"]);
    let failed = t.spawn_id(&["--", "true"]);
    let garbage = t.spawn_id(&["--", "true"]);
    let truncated = t.spawn_id(&["--", "true"]);
    let missing = t.spawn_id(&["--", "sh", "-c", "echo no record"]);
    let lost_gone = t.spawn_id(&["--", "sleep", "300"]);
    let lost_live = t.spawn_id(&["--", "sleep", "300"]);
    t.wait_ended(&exited, WAIT);
    make_failed(&t, &failed);
    for id in [&garbage, &truncated, &missing] {
        t.wait_ended(id, WAIT);
    }
    let record = |id: &str| t.session_dir(id).join("session.json");
    fs::write(record(&garbage), b"\0not json").unwrap();
    let whole = fs::read(record(&truncated)).unwrap();
    fs::write(record(&truncated), &whole[..whole.len() / 2]).unwrap();
    fs::remove_file(record(&missing)).unwrap();
    for id in [&garbage, &truncated, &missing] {
        assert_eq!(t.status(id), Status::Corrupt, "{}", t.listing());
    }
    // A lost session whose command is gone too, and one whose command
    // still runs.
    let rec = make_lost(&t, &lost_gone);
    end_orphans_of(&lost_gone, int(&rec, "pgid") as i32);
    let live_rec = make_lost(&t, &lost_live);
    let live_pid = int(&live_rec, "pid") as i32;
    assert!(is_alive(live_pid));

    // No -f needed; a unique prefix names the full id.
    let out = rm(
        &t,
        &[
            "exited-j", &failed, &garbage, &truncated, &missing, &lost_gone,
        ],
    );
    out.expect_success()
        .check(out.stderr.is_empty(), "nothing on stderr");
    expect_ids(
        &out,
        &[&exited, &failed, &garbage, &truncated, &missing, &lost_gone],
    );
    for id in [&exited, &failed, &garbage, &truncated, &missing, &lost_gone] {
        out.check(
            fs::symlink_metadata(t.session_dir(id)).is_err(),
            &format!("{id} is still there"),
        );
    }

    // A lost session whose command still runs needs -f.
    let out = rm(&t, &[&lost_live]);
    out.expect_code(1).expect_one_error_line(&lost_live);
    out.check(out.stdout.is_empty(), "nothing removed");
    out.check(t.session_dir(&lost_live).is_dir(), "the directory is gone");
    out.check(is_alive(live_pid), "its command was killed without -f");

    let out = rm(&t, &["-f", "--grace", "1s", "--json", &lost_live]);
    out.expect_success();
    let lines = outcomes(&out);
    out.check(lines == [removed(&lost_live, true)], "the -f outcome");
    out.check(!t.session_dir(&lost_live).exists(), "the directory stays");
    assert_nothing_left(&lost_live);
    assert!(t.entries().is_empty(), "{}", t.listing());
}

#[test]
fn a_running_session_is_refused_without_force() {
    let t = TestRoot::new("rm-running");
    let id = t.spawn_id(&["--", "sleep", "300"]);
    t.wait_status(&id, |s| s == Status::Running, WAIT);
    let pid = int(&t.record(&id), "pid") as i32;
    let prefix = &id[..id.len() - 2];
    for sel in [id.as_str(), prefix] {
        let out = rm(&t, &[sel]);
        out.expect_code(1);
        out.check(
            out.stderr_str() == format!("codex-rm: {id} is running (use -f to stop it)\n"),
            "the refusal message",
        );
        out.check(out.stdout.is_empty(), "nothing printed as removed");
    }
    let out = rm(&t, &["--json", &id]);
    out.expect_code(1);
    let lines = outcomes(&out);
    out.check(
        lines.len() == 1
            && lines[0]["id"] == id.as_str()
            && lines[0]["removed"] == false
            && lines[0]["stopped"] == false
            && lines[0]["error"]
                .as_str()
                .is_some_and(|e| e.contains("running")),
        "the --json refusal",
    );
    assert_eq!(t.status(&id), Status::Running, "{}", t.listing());
    assert!(is_alive(pid), "the command was stopped");

    let out = rm(&t, &["-f", "--grace", "1s", &id]);
    out.expect_success();
    expect_ids(&out, &[&id]);
    assert!(!t.session_dir(&id).exists(), "{}", t.listing());
    assert_nothing_left(&id);
}

/// A running session whose record was damaged is still running: codex-rm
/// refuses it without -f (removing the directory would leave its processes
/// out of every tool's reach) and with -f stops it through the processes
/// that hold its lock, then removes it.
#[test]
fn a_running_session_with_a_damaged_record_is_stopped_not_orphaned() {
    let t = TestRoot::new("rm-corrupt-live");
    let id = t.spawn_id(&["--", "sleep", "300"]);
    t.wait_status(&id, |s| s == Status::Running, WAIT);
    let rec = t.record(&id);
    let (pid, sup) = (int(&rec, "pid") as i32, int(&rec, "supervisor_pid") as i32);
    fs::write(t.session_dir(&id).join("session.json"), b"garbage").unwrap();
    assert_eq!(t.status(&id), Status::Corrupt, "{}", t.listing());

    let out = rm(&t, &[&id]);
    out.expect_code(1)
        .expect_one_error_line("corrupt but still running (use -f");
    out.check(t.session_dir(&id).is_dir(), "the directory is gone");
    out.check(
        is_alive(pid) && is_alive(sup),
        "something was stopped without -f",
    );

    // A bystander that merely reads the lock file is no lock holder.
    let lock = fs::File::open(t.session_dir(&id).join("lock")).unwrap();
    let mut reader = t.helper(&["sleep", "300"], &[], Some(lock));
    let bystander = reader.id() as i32;

    let out = rm(&t, &["-f", "--grace", "1s", "--json", &id]);
    out.expect_success();
    out.check(outcomes(&out) == [removed(&id, true)], "the -f outcome");
    out.check(!t.session_dir(&id).exists(), "the directory stays");
    out.check(is_alive(bystander), "a reader of the lock file was stopped");
    assert_nothing_left(&id);
    let _ = reader.kill();
    let _ = reader.wait();
    eventually(Duration::from_secs(2), || !is_alive(sup));
    assert!(!is_alive(sup), "the supervisor still runs");
}

// ---------------------------------------------------------------------
// -f leaves nothing running.
// ---------------------------------------------------------------------

#[test]
fn force_kills_a_command_that_ignores_sigterm_after_the_grace() {
    let t = TestRoot::new("rm-grace");
    let id = t.spawn_id(&["--", "sh", "-c", "trap '' TERM; sleep 300"]);
    // The sleep starts after the trap: once it runs, TERM is ignored.
    assert!(
        eventually(WAIT, || procs_running(&id, &["sleep", "300"]).len() == 1),
        "{}",
        t.listing()
    );
    let out = rm(&t, &["-f", "--grace", "1s", "--json", &id]);
    out.expect_success()
        .check(out.stderr.is_empty(), "nothing on stderr");
    out.check(outcomes(&out) == [removed(&id, true)], "the outcome");
    out.check(
        out.elapsed >= Duration::from_secs(1),
        "finished before the grace period was over",
    );
    out.check(!t.session_dir(&id).exists(), "the directory stays");
    assert_nothing_left(&id);
}

#[test]
fn force_leaves_no_setsid_child() {
    let t = TestRoot::new("rm-setsid");
    let id = t.spawn_id(&["--", "sh", "-c", "setsid sleep 300 & sleep 300"]);
    let sleep = ["sleep", "300"];
    assert!(
        eventually(WAIT, || procs_running(&id, &sleep).len() == 2),
        "{}",
        t.listing()
    );
    let sleeps = procs_running(&id, &sleep);
    assert_ne!(
        sid(sleeps[0]),
        sid(sleeps[1]),
        "one sleep should have its own session"
    );
    let out = rm(&t, &["-f", "--grace", "1s", &id]);
    out.expect_success();
    expect_ids(&out, &[&id]);
    assert!(!t.session_dir(&id).exists());
    assert_nothing_left(&id);
    assert!(sleeps.iter().all(|&p| !is_alive(p)));
}

#[test]
fn force_on_a_lost_session_kills_its_leftovers_but_never_a_reused_pid() {
    let t = TestRoot::new("rm-lost");
    let id = t.spawn_id(&["--", "sh", "-c", "sleep 300 & sleep 300; wait"]);
    assert!(eventually(WAIT, || procs_running(&id, &["sleep", "300"])
        .len()
        == 2));
    make_lost(&t, &id);
    assert_eq!(
        live_session_pids(&id).len(),
        3,
        "sh and two sleeps orphaned"
    );
    let out = rm(&t, &["-f", "--grace", "1s", "--json", &id]);
    out.expect_success();
    out.check(outcomes(&out) == [removed(&id, true)], "the outcome");
    out.check(!t.session_dir(&id).exists(), "the directory stays");
    assert_nothing_left(&id);

    // A lost session whose recorded pids now name an unrelated process,
    // start time included: that process is left alone.
    let id = t.spawn_id(&["--", "sleep", "300"]);
    let rec = make_lost(&t, &id);
    end_orphans_of(&id, int(&rec, "pgid") as i32);
    let mut stranger = t.helper(&["sleep", "300"], &[], None);
    let pid = stranger.id() as i32;
    let start = shared::host::process_start_time(pid).expect("its start time");
    let mut edited = t.record(&id);
    for key in ["pid", "pgid", "supervisor_pid"] {
        edited[key] = json!(pid);
    }
    edited["pid_start_time"] = json!(start);
    edited["supervisor_start_time"] = json!(start);
    t.write_record(&id, &edited);
    assert_eq!(t.status(&id), Status::Lost, "{}", t.listing());

    let out = rm(&t, &["-f", "--grace", "1s", "--json", &id]);
    let alive = is_alive(pid) && matches!(stranger.try_wait(), Ok(None));
    out.expect_success();
    out.check(
        alive,
        &format!("codex-rm -f killed pid {pid}, which is not of the session"),
    );
    out.check(outcomes(&out) == [removed(&id, false)], "the outcome");
    out.check(!t.session_dir(&id).exists(), "the directory stays");
    // The stranger is ours to end, by its pid.
    let _ = stranger.kill();
    let _ = stranger.wait();
}

/// Waits a moment, then fails unless every pid in `pids` still runs.
fn expect_alive(out: &Output, pids: &[i32], what: &str) {
    std::thread::sleep(Duration::from_millis(500));
    let dead: Vec<i32> = pids.iter().copied().filter(|&p| !is_alive(p)).collect();
    out.check(
        dead.is_empty(),
        &format!("{what}: pids {dead:?} were signalled"),
    );
}

/// A session recorded by another host or another boot (a shared home
/// directory, a reboot) is never signalled, whatever its pids now name:
/// a live one is refused even with -f, a lost one's "leftovers" are left
/// alone (another boot: removed without killing; another host: refused).
#[test]
fn a_session_of_another_host_or_boot_is_never_signalled() {
    let t = TestRoot::new("rm-foreign");
    // Another host is another machine: another name and another boot (a
    // name alone may be this machine renamed, which is still this one).
    let foreign = |rec: &Value, key: &str| {
        let mut e = rec.clone();
        e["boot_id"] = json!("00000000-0000-4000-8000-000000000000");
        if key == "host" {
            e["host"] = json!("elsewhere.invalid");
        }
        e
    };
    for key in ["host", "boot_id"] {
        // Running here, but recorded elsewhere: its pids are not ours.
        let id = t.spawn_id(&["--", "sleep", "300"]);
        t.wait_status(&id, |s| s == Status::Running, WAIT);
        let rec = t.record(&id);
        let pids = [int(&rec, "supervisor_pid") as i32, int(&rec, "pid") as i32];
        t.write_record(&id, &foreign(&rec, key));
        let out = rm(&t, &["-f", "--grace", "1s", &id]);
        expect_alive(&out, &pids, &format!("a live session with another {key}"));
        if key == "host" {
            // Its lock is held (a shared home): running, there.
            out.expect_code(1)
                .expect_one_error_line("elsewhere.invalid");
            out.check(t.session_dir(&id).is_dir(), "the directory was removed");
            t.write_record(&id, &rec); // the test's cleanup stops it
        } else {
            // Another boot of this host: over, whatever holds the lock.
            out.expect_success();
            expect_ids(&out, &[&id]);
            for pid in pids {
                signal(pid, Signal::SIGKILL);
            }
        }

        // Lost, its command left running under a pid that means nothing
        // on another host or boot.
        let id = t.spawn_id(&["--", "sleep", "300"]);
        let rec = make_lost(&t, &id);
        let orphan = int(&rec, "pid") as i32;
        t.write_record(&id, &foreign(&rec, key));
        let out = rm(&t, &["-f", "--grace", "1s", &id]);
        expect_alive(
            &out,
            &[orphan],
            &format!("a lost session with another {key}"),
        );
        if key == "host" {
            out.expect_code(1)
                .expect_one_error_line("elsewhere.invalid");
            out.check(t.session_dir(&id).is_dir(), "the directory was removed");
        } else {
            out.expect_success();
            expect_ids(&out, &[&id]);
        }
        end_orphans_of(&id, int(&rec, "pgid") as i32);
    }
}

// ---------------------------------------------------------------------
// Symlinks are removed as links.
// ---------------------------------------------------------------------

#[test]
fn symlinks_are_removed_as_links_never_followed() {
    let t = TestRoot::new("rm-symlink");
    let id = t.spawn_id(&["--", "sh", "-c", "echo secret"]);
    t.wait_ended(&id, WAIT);
    let dir = t.session_dir(&id);
    let precious = t.path().join("precious.txt");
    fs::write(&precious, "keep me\n").unwrap();
    fs::remove_file(dir.join("stdout.log")).unwrap();
    symlink(&precious, dir.join("stdout.log")).unwrap();
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("inner.txt"), "keep me too\n").unwrap();
    symlink(&outside, dir.join("extra")).unwrap();

    let out = rm(&t, &[&id]);
    out.expect_success();
    expect_ids(&out, &[&id]);
    assert!(fs::symlink_metadata(&dir).is_err(), "{}", t.listing());
    assert_eq!(fs::read_to_string(&precious).unwrap(), "keep me\n");
    assert_eq!(
        fs::read_to_string(outside.join("inner.txt")).unwrap(),
        "keep me too\n"
    );

    // A session "directory" that is a link to a directory outside the
    // root, holding what looks like a session.
    let other = t.spawn_id(&["--", "sh", "-c", "echo other"]);
    let mut rec = t.wait_ended(&other, WAIT);
    let elsewhere = t.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o700)).unwrap();
    rec["id"] = json!("linked-1");
    fs::write(
        elsewhere.join("session.json"),
        serde_json::to_vec(&rec).unwrap(),
    )
    .unwrap();
    fs::write(elsewhere.join("stdout.log"), "other\n").unwrap();
    let link = t.session_dir("linked-1");
    symlink(&elsewhere, &link).unwrap();

    let out = rm(&t, &["linked-1"]);
    out.expect_success();
    expect_ids(&out, &["linked-1"]);
    assert!(
        fs::symlink_metadata(&link).is_err(),
        "the link is still there"
    );
    assert!(
        elsewhere.join("session.json").is_file(),
        "the target's record was removed"
    );
    assert_eq!(
        fs::read_to_string(elsewhere.join("stdout.log")).unwrap(),
        "other\n"
    );
    assert!(t.session_dir(&other).is_dir());
}

/// What a codex-spawn killed mid-creation (`.new-…`) or a codex-rm killed
/// mid-removal (`.rm-…`) left behind is reclaimed by every codex-rm run,
/// once older than 10 s and unlocked; a fresh one, or one whose lock is
/// held, is left alone.
#[test]
fn every_run_reclaims_abandoned_staging_directories() {
    let t = TestRoot::new("rm-staging");
    let id = t.spawn_id(&["--", "true"]);
    t.wait_ended(&id, WAIT);
    let hidden = |name: &str, files: &[&str]| {
        let dir = t.root().join(name);
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        for f in files {
            fs::write(dir.join(f), "").unwrap();
        }
        dir
    };
    let old = Duration::from_secs(60);
    backdate(&hidden(".new-1-abandoned", &["lock", "session.json"]), old);
    backdate(
        &hidden(".rm-gone-r-4242-0", &["lock", "session.json", "stdout.log"]),
        old,
    );
    hidden(".new-2-fresh", &["lock"]);
    let busy = hidden(".new-3-busy", &["lock"]);
    let mut holder = t.helper(
        &["flock", "-x", s(&busy.join("lock")), "sleep", "300"],
        &[],
        None,
    );
    assert!(
        eventually(WAIT, || shared::lock::is_held(&busy).unwrap_or(false)),
        "flock never took the lock"
    );
    backdate(&busy, old);
    let out = rm(&t, &[&id]);
    out.expect_success();
    expect_ids(&out, &[&id]);
    out.check(
        t.entries() == [".new-2-fresh", ".new-3-busy"],
        "the abandoned staging directories are not reclaimed, or the others are not left",
    );
    // The holder is ours to end, by its pid.
    let _ = holder.kill();
    let _ = holder.wait();
}

// ---------------------------------------------------------------------
// Ids from stdin; failures that do not stop the others.
// ---------------------------------------------------------------------

#[test]
fn fifty_ids_through_stdin_are_all_removed() {
    let t = TestRoot::new("rm-stdin");
    let running = t.spawn_id(&["--", "sleep", "300"]);
    let ps_bin = sh_quote(s(&bin("codex-ps")));
    let rm_bin = sh_quote(s(&bin("codex-rm")));
    let root = sh_quote(s(t.root()));
    for pipe in [
        format!("{ps_bin} --root {root} -q -f status=exited | {rm_bin} --root {root}"),
        format!("{ps_bin} --root {root} -q -f status=exited | xargs {rm_bin} --root {root}"),
    ] {
        let ids: Vec<String> = (0..50).map(|_| t.spawn_id(&["--", "true"])).collect();
        for id in &ids {
            t.wait_ended(id, WAIT);
        }
        let out = t.command("sh").arg("-c").arg(&pipe).run();
        out.expect_success()
            .check(out.stderr.is_empty(), "nothing on stderr");
        let printed: Vec<String> = out.stdout_str().lines().map(str::to_string).collect();
        out.check(
            printed.iter().collect::<BTreeSet<_>>() == ids.iter().collect(),
            "stdout is not the 50 ids",
        );
        out.check(printed.len() == 50, "each id printed once");
        out.check(
            t.entries() == [running.clone()],
            "only the running session should be left",
        );
        assert_eq!(t.status(&running), Status::Running);
    }
}

/// `-f` on several running sessions asks them all to stop before waiting
/// on any: each command, in its SIGTERM handler, sees every other one told
/// to stop too; each is reported stopped and removed, and nothing of it is
/// left.
#[test]
fn force_on_many_running_sessions_stops_each_of_them() {
    let t = TestRoot::new("rm-many-force");
    let n = 4;
    // Each command, on SIGTERM, says so (term-I), then waits up to 10 s
    // for every other command to have been told too, and writes whether
    // they all were (together) or not (alone) before it exits. Stopped one
    // after the other, the first would wait alone in vain.
    let ids: Vec<String> = (0..n)
        .map(|i| {
            let script = format!(
                "cd {dir} || exit 9; \
                 trap ': > term-{i}; k=0; \
                   while [ $(ls term-* | wc -l) -lt {n} ] && [ $k -lt 200 ]; do sleep 0.05; k=$((k+1)); done; \
                   if [ $k -lt 200 ]; then echo together; else echo alone; fi > result-{i}; exit 3' TERM; \
                 : > ready-{i}; while :; do sleep 0.05; done",
                dir = sh_quote(s(t.path())),
            );
            t.spawn_id(&["--", "sh", "-c", &script])
        })
        .collect();
    // Each handler is set once its command says it is ready.
    for i in 0..n {
        let ready = t.path().join(format!("ready-{i}"));
        assert!(wait_file(&ready, WAIT), "{}", t.listing());
    }
    let mut args = vec!["-f", "--grace", "30s", "--json"];
    args.extend(ids.iter().map(String::as_str));
    let out = rm(&t, &args);
    out.expect_success();
    let want: Vec<Value> = ids.iter().map(|id| removed(id, true)).collect();
    out.check(
        outcomes(&out) == want,
        "each reported stopped and removed, in order",
    );
    for (i, id) in ids.iter().enumerate() {
        let result = file_text(&t.path().join(format!("result-{i}")));
        out.check(
            result == "together\n",
            &format!(
                "{id}'s command got SIGTERM, then saw the others not asked to stop \
                 within 10 s ({result:?}): they were not asked all at once"
            ),
        );
        assert_nothing_left(id);
    }
    assert!(t.entries().is_empty(), "{}", t.listing());
}

/// A session named twice (its id and a prefix of it) is asked to stop
/// once: its command still gets the whole grace for its SIGTERM handler
/// (a second request would kill it at once); the second name is then no
/// such session.
#[test]
fn force_on_a_session_named_twice_keeps_its_grace() {
    let t = TestRoot::new("rm-twice");
    let marker = t.path().join("cleaned");
    let ready = t.path().join("ready");
    let script = format!(
        "trap 'sleep 0.5; echo cleaned > {}; exit 3' TERM; : > {}; while :; do sleep 0.05; done",
        sh_quote(s(&marker)),
        sh_quote(s(&ready))
    );
    let id = t.spawn_id(&["--", "sh", "-c", &script]);
    let other = t.spawn_id(&["--", "sleep", "300"]);
    assert!(wait_file(&ready, WAIT), "{}", t.listing());
    let prefix = &id[..id.len() - 1];
    let out = rm(&t, &["-f", "--grace", "10s", &id, &other, prefix]);
    out.expect_code(1).check(
        out.stdout_str() == format!("{id}\n{other}\n"),
        "both removed, once each",
    );
    out.expect_one_error_line(&format!("no such session: {id}"));
    out.check(
        file_text(&marker) == "cleaned\n",
        "the SIGTERM handler did not get to finish",
    );
    assert_eq!(t.entries(), Vec::<String>::new(), "{}", t.listing());
    assert_nothing_left(&id);
    assert_nothing_left(&other);
}

#[test]
fn good_and_bad_selectors_mixed_remove_the_good_ones_and_exit_1() {
    let t = TestRoot::new("rm-mixed");
    for name in ["plain-a", "plain-b", "good-a", "good-b"] {
        t.spawn_id(&["-n", name, "--", "true"]);
        t.wait_ended(name, WAIT);
    }
    let busy = t.spawn_id(&["-n", "busy-r", "--", "sleep", "300"]);

    let out = rm(&t, &["plain-a", "no-such-id", "plain-b"]);
    out.expect_code(1).expect_one_error_line("no-such-id");
    expect_ids(&out, &["plain-a", "plain-b"]);

    // The ambiguous prefix first, while it matches both good-* sessions.
    let out = rm(
        &t,
        &["--json", "good", "zzz-unknown", "good-a", &busy, "good-b"],
    );
    out.expect_code(1);
    let lines = outcomes(&out);
    out.check(lines.len() == 5, "one line per selector");
    let error = |i: usize| lines[i]["error"].as_str().unwrap_or_default().to_string();
    out.check(
        lines[0]["id"] == "good"
            && lines[0]["removed"] == false
            && error(0).contains("good-a")
            && error(0).contains("good-b"),
        "the ambiguous prefix names its candidates",
    );
    out.check(
        lines[1]["id"] == "zzz-unknown" && lines[1]["removed"] == false && !error(1).is_empty(),
        "the unknown id fails",
    );
    out.check(lines[2] == removed("good-a", false), "good-a is removed");
    out.check(
        lines[3]["id"] == busy.as_str()
            && lines[3]["removed"] == false
            && lines[3]["stopped"] == false
            && error(3).contains("running"),
        "the running session is refused",
    );
    out.check(lines[4] == removed("good-b", false), "good-b is removed");
    out.check(
        out.stderr_str().lines().count() == 3,
        "one error line on stderr per failure",
    );
    assert_eq!(t.entries(), [busy.as_str()], "{}", t.listing());
    assert_eq!(t.status(&busy), Status::Running);
}

// ---------------------------------------------------------------------
// Usage errors: a terminal on stdin, row numbers.
// ---------------------------------------------------------------------

#[test]
fn no_selector_on_a_terminal_is_a_usage_error() {
    let t = TestRoot::new("rm-tty");
    let keep = t.spawn_id(&["--", "true"]);
    t.wait_ended(&keep, WAIT);
    let d = s(t.path()).to_string();
    let script = t.script(
        "rm.sh",
        &format!(
            "{} --root {} > {d}/out 2> {d}/err\necho $? > {d}/rc.part && mv {d}/rc.part {d}/rc\n\
             exec sleep 300\n",
            sh_quote(s(&bin("codex-rm"))),
            sh_quote(s(t.root())),
        ),
    );
    let mut tmux = Tmux::script(&t, &script);
    let done = wait_file(&t.path().join("rc"), Duration::from_secs(10));
    let screen = tmux.capture().stdout_str();
    tmux.kill_server();
    let read = |f: &str| fs::read_to_string(t.path().join(f)).unwrap_or_default();
    assert!(
        done,
        "codex-rm with a terminal on stdin did not return (waiting for input?)\nscreen:\n{screen}"
    );
    assert_eq!(read("rc").trim(), "2", "stderr: {}", read("err"));
    assert!(read("out").is_empty(), "stdout: {}", read("out"));
    let err = read("err");
    assert!(
        err.starts_with("codex-rm: ") && err.contains("no session") && err.lines().count() == 1,
        "no one-line usage error on stderr: {err:?}"
    );
    assert_eq!(t.entries(), [keep.as_str()], "{}", t.listing());
}

#[test]
fn row_numbers_are_refused() {
    let t = TestRoot::new("rm-rows");
    let keep = t.spawn_id(&["--", "true"]);
    t.wait_ended(&keep, WAIT);
    // As an argument: a usage error, found before anything is removed.
    for args in [&["0"][..], &["-f", "0"], &["--json", "0"], &[&keep, "0"]] {
        let out = rm(&t, args);
        out.expect_code(2);
        out.check(out.stderr_str().contains("row"), "the error names rows");
        out.check(out.stdout.is_empty(), "nothing removed, nothing reported");
        assert_eq!(t.entries(), [keep.as_str()], "{}", t.listing());
    }
    // Read from stdin: that one id fails, as a removal does (exit 1).
    let out = t.tool_cmd("codex-rm").arg("--json").stdin("0\n").run();
    out.expect_code(1);
    out.check(out.stderr_str().contains("row"), "the error names rows");
    let lines = outcomes(&out);
    out.check(
        lines.len() == 1 && lines[0]["removed"] == false,
        "--json: not removed",
    );
    assert_eq!(t.entries(), [keep.as_str()], "{}", t.listing());
}

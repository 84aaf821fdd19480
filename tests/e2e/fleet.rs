//! Running a fleet: queues with a concurrency limit (`--queue`),
//! dependencies (`--after`, `--after-ok`), stopping without removing
//! (`codex-rm --stop`) and running again (`codex-spawn --rerun`).

use std::fs;
use std::time::{Duration, Instant};

use serde_json::Value;
use shared::Status;

use crate::support::*;

/// `codex-ps --json` of every session, by id.
fn rows(t: &TestRoot) -> Vec<Value> {
    let out = t.tool("codex-ps", &["--json"]);
    out.expect_success();
    out.stdout_str()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| out.fail(&format!("{l}: {e}"))))
        .collect()
}

/// Six sessions in a queue of two: at most two ever run at once (sampled
/// all along), two do run together, all six end, and they start in the
/// order they were created.
#[test]
fn six_in_a_queue_of_two_run_two_at_a_time_in_order() {
    let t = TestRoot::new("queue-6of2");
    let ids: Vec<String> = (1..=6)
        .map(|i| {
            t.spawn_id(&[
                "-n",
                &format!("job-{i}"),
                "--queue",
                "q=2",
                "--",
                "sh",
                "-c",
                "sleep 0.4",
            ])
        })
        .collect();
    let mut most = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = rows(&t);
        let running = rows.iter().filter(|r| r["status"] == "running").count();
        most = most.max(running);
        assert!(running <= 2, "{running} running at once:\n{}", t.listing());
        if rows.iter().all(|r| r["status"] == "exited") && rows.len() == 6 {
            break;
        }
        assert!(Instant::now() < deadline, "not all ended:\n{}", t.listing());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(most, 2, "the queue never ran two at once");
    let started: Vec<String> = ids
        .iter()
        .map(|id| {
            let r = t.record(id);
            assert_eq!(r["exit_code"], 0, "{r:#}");
            assert!(r["queued_at"].is_string(), "when it was queued: {r:#}");
            r["started_at"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    // Each holds its place in line until it is recorded running, so even
    // sessions that find a free slot at once start in creation order.
    let mut sorted = started.clone();
    sorted.sort();
    assert_eq!(started, sorted, "started in creation order: {ids:?}");
    let sessions = rows(&t);
    assert_eq!(sessions.len(), 6, "the queue's files are not sessions");
}

/// A member of a queue whose supervisor is killed with -9 frees its slot:
/// the kernel releases the lock, and the next session runs.
#[test]
fn a_killed_member_frees_its_slot() {
    let t = TestRoot::new("queue-kill9");
    let first = t.spawn_id(&["--queue", "one=1", "--", "sleep", "60"]);
    let next = t.spawn_id(&["--queue", "one=1", "--", "echo", "ran"]);
    let rec = make_lost(&t, &first);
    let rec2 = t.wait_ended(&next, WAIT);
    assert_eq!(rec2["exit_code"], 0, "{rec2:#}");
    assert_eq!(t.read(&next, "stdout.log"), b"ran\n");
    end_orphans(&first, int(&rec, "pgid") as i32);
}

/// `--after` waits for the end whatever the exit code; `--after-ok` fails
/// without running when a dependency did not exit 0, naming it.
#[test]
fn after_waits_and_after_ok_fails_on_a_failed_dependency() {
    let t = TestRoot::new("after");
    let dep = t.spawn_id(&["-n", "dep-1", "--", "sh", "-c", "sleep 0.5; exit 3"]);
    let after = t.spawn_id(&["--after", &dep, "--", "echo", "after"]);
    let after_ok = t.spawn_id(&["--after-ok", &dep, "--", "echo", "never"]);
    assert_eq!(t.status(&after), Status::Queued, "{}", t.listing());
    let rec = t.wait_ended(&after, WAIT);
    assert_eq!(rec["exit_code"], 0, "{rec:#}");
    let dep_end = t.record(&dep)["ended_at"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        rec["started_at"].as_str().unwrap_or("") >= dep_end.as_str(),
        "started before its dependency ended: {rec:#}"
    );
    t.wait_status(&after_ok, |s| s == Status::Failed, WAIT);
    let rec = t.record(&after_ok);
    let error = rec["error"].as_str().unwrap_or("");
    assert!(
        error.contains(&dep) && error.contains("exited 3"),
        "{rec:#}"
    );
    assert!(
        rec["started_at"].is_null() && rec["pid"].is_null(),
        "{rec:#}"
    );
    assert_eq!(
        file_size(&t.session_dir(&after_ok).join("stdout.log")),
        0,
        "it never ran"
    );
    // A dependency that exited 0 lets --after-ok run.
    let ok = t.spawn_id(&["--", "true"]);
    let then = t.spawn_id(&["--after-ok", &ok, "--", "echo", "then"]);
    assert_eq!(t.wait_ended(&then, WAIT)["exit_code"], 0);
}

/// `codex-rm --stop` stops as -f does but keeps the record and the logs;
/// a queued session stopped or removed leaves its queue without running.
#[test]
fn stop_keeps_the_session_and_a_queued_one_leaves_its_queue() {
    let t = TestRoot::new("stop");
    let id = t.spawn_id(&["--queue", "s=1", "--", "sh", "-c", "echo hi; exec sleep 60"]);
    let waiting = t.spawn_id(&["--queue", "s=1", "--", "echo", "waiting"]);
    let removed = t.spawn_id(&["--queue", "s=1", "--", "echo", "removed"]);
    t.wait_status(&id, |s| s == Status::Running, WAIT);
    assert!(eventually(WAIT, || t.read(&id, "stdout.log") == b"hi\n"));
    assert_eq!(t.status(&waiting), Status::Queued);
    // Removing a queued session needs no -f.
    let out = t.tool("codex-rm", &[&removed]);
    out.expect_success();
    assert!(!t.session_dir(&removed).exists(), "{}", t.listing());
    // --stop of the queued one: it never runs.
    let out = t.tool("codex-rm", &["--stop", &waiting]);
    out.expect_success();
    out.check(out.stdout_str().trim() == waiting, "prints the id");
    let rec = t.record(&waiting);
    assert_eq!(t.status(&waiting), Status::Failed, "{rec:#}");
    assert!(
        rec["error"].as_str().unwrap_or("").contains("never ran"),
        "{rec:#}"
    );
    // --stop of the running one: killed SIGTERM, logs and record kept.
    let out = t.tool("codex-rm", &["--stop", "--json", &id]);
    out.expect_success();
    let line: Value = serde_json::from_str(out.stdout_str().trim()).unwrap();
    assert_eq!(line["stopped"], true, "{line}");
    assert_eq!(line["removed"], false, "{line}");
    let rec = t.record(&id);
    assert_eq!(rec["signal"], "SIGTERM", "{rec:#}");
    assert_eq!(t.status(&id), Status::Exited);
    assert_eq!(t.read(&id, "stdout.log"), b"hi\n");
    assert!(live_session_pids(&id).is_empty());
    let table = t.tool("codex-ps", &[&id]);
    table.check(
        table.stdout_str().contains("killed SIGTERM"),
        "the table says so",
    );
    // Stopping an ended session again is no error.
    t.tool("codex-rm", &["--stop", &id]).expect_success();
    assert!(t.session_dir(&id).exists());
}

/// `--rerun` of a cmd session: the same command, directory, labels and
/// options, the options given beside it winning, and the `--env` names
/// it could not restore named on stderr.
#[test]
fn rerun_of_a_command_runs_it_again() {
    let t = TestRoot::new("rerun-cmd");
    let work = t.path().join("work");
    fs::create_dir(&work).unwrap();
    let first = t.spawn_id(&[
        "-C",
        s(&work),
        "-l",
        "team=a",
        "-l",
        "run=1",
        "-e",
        "TOKEN=x",
        "--timeout",
        "1m",
        "--",
        "sh",
        "-c",
        "pwd; echo \"[$TOKEN]\"",
    ]);
    t.wait_ended(&first, WAIT);
    let out = t.spawn(&["--rerun", &first, "-l", "run=2"]);
    out.expect_success();
    out.check(out.stderr_str().contains("TOKEN"), "names the env it lost");
    let again = out.id();
    let rec = t.wait_ended(&again, WAIT);
    let old = t.record(&first);
    assert_eq!(rec["argv"], old["argv"]);
    assert_eq!(rec["cwd"], s(&work));
    assert_eq!(rec["timeout_ms"], 60_000);
    assert_eq!(rec["labels"], serde_json::json!({"team": "a", "run": "2"}));
    assert_eq!(
        String::from_utf8_lossy(&t.read(&again, "stdout.log")),
        format!("{}\n[]\n", s(&work))
    );
    // Not with a command of its own.
    t.spawn(&["--rerun", &first, "--", "true"])
        .expect_code(2)
        .expect_usage_error_naming("--rerun");
}

/// `--rerun` of an exec session: the whole prompt again on stdin, codex's
/// options again, in the same directory.
#[test]
fn rerun_of_an_exec_session_sends_the_same_prompt() {
    let t = TestRoot::new("rerun-exec");
    let fake = t.script(
        "fake-codex",
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$OUT.argv\"\ncat > \"$OUT.stdin\"\n",
    );
    let work = t.path().join("work");
    fs::create_dir(&work).unwrap();
    let prompt = format!("-starts with a dash\nand {} more", "x".repeat(300));
    let out1 = t.path().join("one");
    let first = t
        .spawn_cmd()
        .args(["--codex-bin", s(&fake), "-C", s(&work)])
        .arg("-e")
        .arg(format!("OUT={}", s(&out1)))
        .args(["exec", "-", "-m", "m1", "--skip-git-repo-check"])
        .stdin(prompt.clone())
        .run()
        .id();
    t.wait_ended(&first, WAIT);
    let out2 = t.path().join("two");
    let again = t
        .spawn_cmd()
        .args(["--codex-bin", s(&fake), "--rerun", &first])
        .arg("-e")
        .arg(format!("OUT={}", s(&out2)))
        .run()
        .id();
    let rec = t.wait_ended(&again, WAIT);
    assert_eq!(rec["kind"], "exec", "{rec:#}");
    assert_eq!(rec["cwd"], s(&work), "{rec:#}");
    let read = |p: &std::path::Path, ext: &str| {
        fs::read_to_string(p.with_extension(ext)).unwrap_or_default()
    };
    assert_eq!(read(&out2, "stdin"), prompt, "the whole prompt again");
    assert_eq!(
        read(&out2, "argv"),
        read(&out1, "argv"),
        "codex's options again"
    );
    assert_eq!(t.read(&again, "prompt"), prompt.as_bytes());
}

//! `codex-ps --wait` and the `--on-exit` / `--on-state` hooks (issue 18):
//! waiting for one session, several, any one, and a timeout, with the exit
//! statuses the README gives; hooks that write a file the test reads
//! (their environment, their output log, a failure, a time limit), and
//! slow hooks that must not delay the record, the lock or the command.

use std::fs;
use std::time::{Duration, Instant};

use shared::Status;

use crate::support::*;

/// Far longer than any wait here should take.
const LONG: Duration = Duration::from_secs(20);

/// `codex-ps ARGS`, timed.
fn timed(t: &TestRoot, args: &[&str]) -> (Output, Duration) {
    let start = Instant::now();
    let out = t.tool_cmd("codex-ps").args(args).timeout(LONG).run();
    (out, start.elapsed())
}

fn gate(t: &TestRoot, name: &str) -> String {
    format!(
        "while [ ! -e {} ]; do sleep 0.02; done",
        sh_quote(s(&t.path().join(name)))
    )
}

fn open(t: &TestRoot, name: &str) {
    fs::write(t.path().join(name), "").unwrap();
}

#[test]
fn wait_for_one_session_exits_with_its_code_and_lists_it() {
    let t = TestRoot::new("wait-one");
    let id = t.spawn_id(&["--", "sh", "-c", &format!("{}; exit 3", gate(&t, "go"))]);
    let waiter = std::thread::scope(|scope| {
        let w = scope.spawn(|| timed(&t, &["--wait", &id]));
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(t.status(&id), Status::Running);
        open(&t, "go");
        w.join().unwrap()
    });
    let (out, took) = waiter;
    out.expect_code(3);
    assert!(out.stdout_str().contains(&id) && out.stdout_str().contains("exited 3"));
    // Event-driven: not the 5 s safety net.
    assert!(took < Duration::from_secs(4), "{took:?}");
    // A session already over: at once, and the same code; -q and --json.
    let (out, _) = timed(&t, &["--wait", "-q", &id]);
    out.expect_code(3);
    assert_eq!(out.stdout_str(), format!("{id}\n"));
    let (out, _) = timed(&t, &["--wait", "--json", &id]);
    out.expect_code(3);
    let row: serde_json::Value = serde_json::from_str(out.stdout_str().trim())
        .unwrap_or_else(|e| out.fail(&format!("not one JSON line: {e}")));
    assert_eq!(row["exit_code"], 3, "{row:#}");
}

#[test]
fn wait_for_several_all_or_any() {
    let t = TestRoot::new("wait-many");
    let a = t.spawn_id(&["--", "sh", "-c", &gate(&t, "a")]);
    let b = t.spawn_id(&["--", "sh", "-c", &format!("{}; exit 4", gate(&t, "b"))]);
    let c = t.spawn_id(&["--", "sh", "-c", &gate(&t, "c")]);

    // any: the first to end, listed alone, with its code.
    let (out, _) = std::thread::scope(|scope| {
        let w = scope.spawn(|| timed(&t, &["--wait=any", "-q", &a, &b, &c]));
        std::thread::sleep(Duration::from_millis(300));
        open(&t, "b");
        w.join().unwrap()
    });
    out.expect_code(4);
    assert_eq!(out.stdout_str(), format!("{b}\n"));
    assert_eq!(t.status(&a), Status::Running);

    // all: only once every one has ended; 0 only if all exited 0.
    let (out, _) = std::thread::scope(|scope| {
        let w = scope.spawn(|| timed(&t, &["--wait", "-q", &a, &c]));
        open(&t, "a");
        std::thread::sleep(Duration::from_millis(500));
        assert!(!w.is_finished(), "--wait returned with {c} still running");
        open(&t, "c");
        w.join().unwrap()
    });
    out.expect_code(0);
    let mut listed: Vec<String> = out.stdout_str().lines().map(String::from).collect();
    listed.sort();
    let mut want = vec![a.clone(), c.clone()];
    want.sort();
    assert_eq!(listed, want);
    let (out, _) = timed(&t, &["--wait", "-q", &a, &b, &c]);
    out.expect_code(1);
    // With filters and no selector: the sessions listed.
    let (out, _) = timed(&t, &["--wait", "-q", "-f", "exit=0"]);
    out.expect_code(0);
    assert_eq!(out.stdout_str().lines().count(), 2);
}

#[test]
fn wait_gives_up_at_the_timeout_with_124_and_fails_with_125() {
    let t = TestRoot::new("wait-timeout");
    let id = t.spawn_id(&["--", "sleep", "30"]);
    let (out, took) = timed(&t, &["--wait", "--timeout", "500ms", &id]);
    out.expect_code(124);
    assert!(
        out.stderr_str().contains("timed out"),
        "{}",
        out.stderr_str()
    );
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(4),
        "{took:?}"
    );
    // codex-ps's own failures and usage errors: 125.
    t.tool("codex-ps", &["--wait", "no-such-session"])
        .expect_code(125);
    t.tool("codex-ps", &["--wait=some"]).expect_code(125);
    t.tool("codex-ps", &["--timeout", "1s"]).expect_code(2);
    // A session stopped and removed while waited for: its code, 128+15,
    // when its end was seen before its removal; else 1, saying so.
    let (out, _) = std::thread::scope(|scope| {
        let w = scope.spawn(|| timed(&t, &["--wait", &id]));
        std::thread::sleep(Duration::from_millis(300));
        t.tool("codex-rm", &["-f", &id]).expect_success();
        w.join().unwrap()
    });
    match out.code() {
        Some(143) => assert!(out.stdout_str().contains("killed SIGTERM")),
        _ => {
            out.expect_code(1);
            assert!(
                out.stderr_str().contains("was removed"),
                "{}",
                out.stderr_str()
            );
        }
    }
}

#[test]
fn on_exit_sees_the_final_record_its_environment_and_logs_its_output() {
    let t = TestRoot::new("hook-exit");
    let out_file = t.path().join("exit-env");
    let hook = format!(
        "echo hook says hi; echo oops >&2; \
         {{ echo \"id=$CODEX_SESSION_ID\"; echo \"status=$CODEX_SESSION_STATUS\"; \
            echo \"code=$CODEX_SESSION_EXIT_CODE\"; echo \"signal=$CODEX_SESSION_SIGNAL\"; \
            echo \"dir=$CODEX_SESSION_DIR\"; echo \"hook=$CODEX_HOOK\"; echo \"pwd=$(pwd)\"; \
            echo \"mine=$MINE\"; codex-ps --root {} -q -f status=exited; }} > {}.tmp && mv {}.tmp {}",
        sh_quote(s(t.root())),
        sh_quote(s(&out_file)),
        sh_quote(s(&out_file)),
        sh_quote(s(&out_file)),
    );
    let work = t.path().join("work");
    fs::create_dir(&work).unwrap();
    let path = format!(
        "PATH={}:{}",
        s(&bin_dir()),
        std::env::var("PATH").unwrap_or_default()
    );
    let id = t.spawn_id(&[
        "-C",
        s(&work),
        "-e",
        "MINE=yes",
        "-e",
        &path,
        "--on-exit",
        &hook,
        "--",
        "sh",
        "-c",
        "exit 5",
    ]);
    assert!(
        wait_file(&out_file, LONG),
        "the on-exit hook never ran\n{}",
        t.listing()
    );
    let env = fs::read_to_string(&out_file).unwrap();
    let dir = t.session_dir(&id);
    for line in [
        format!("id={id}"),
        "status=exited".into(),
        "code=5".into(),
        "signal=".into(),
        format!("dir={}", s(&dir)),
        "hook=exit".into(),
        format!("pwd={}", s(&work)),
        "mine=yes".into(),
        // The session was over (record and lock) when the hook ran.
        id.clone(),
    ] {
        assert!(env.lines().any(|l| l == line), "no {line:?} in:\n{env}");
    }
    let log_path = dir.join("hooks.log");
    assert!(eventually(LONG, || file_text(&log_path).contains("on-exit: exited 0")));
    let log = file_text(&log_path);
    assert!(
        log.contains("hook says hi\n") && log.contains("oops\n"),
        "{log}"
    );
    assert_eq!(mode(&log_path), 0o600);
}

#[test]
fn slow_and_failing_hooks_delay_nothing_and_are_recorded() {
    let t = TestRoot::new("hook-slow");
    let late = t.path().join("late");
    let script = t.script(
        "states.sh",
        "#!/bin/sh\nprintf '\\033]7501;state=working\\033\\\\'\nsleep 0.6\n\
         printf '\\033]7501;state=idle\\033\\\\'\nsleep 0.6\n\
         printf '\\033]7501;state=done\\033\\\\'\nsleep 0.6\n",
    );
    let start = Instant::now();
    let id = t.spawn_id(&[
        "--on-state",
        "sleep 3; exit 7",
        "--on-exit",
        &format!("sleep 2; touch {}", sh_quote(s(&late))),
        "-t",
        "--",
        s(&script),
    ]);
    // A slow on-state hook holds up neither the record nor the next state.
    assert!(eventually(LONG, || {
        t.record(&id)["agent"]["state"] == "idle"
    }));
    assert!(
        start.elapsed() < Duration::from_millis(2500),
        "{:?}",
        start.elapsed()
    );
    // Nor the end: record written and lock released while the hooks run
    // (--wait returns once the lock is released).
    let (out, _) = timed(&t, &["--wait", "-q", &id]);
    out.expect_code(0);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(!t.lock_held(&id));
    assert!(!late.exists(), "the on-exit hook ran before its sleep");
    assert!(wait_file(&late, LONG), "the on-exit hook never ended");
    // The failure is in hooks.log, in order, one hook at a time.
    let log_path = t.session_dir(&id).join("hooks.log");
    assert!(eventually(LONG, || file_text(&log_path)
        .matches("exited 7")
        .count()
        >= 2));
    let log = file_text(&log_path);
    let started: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("-- on-state (") && l.contains(" at "))
        .collect();
    assert!(started[0].starts_with("-- on-state (working)"), "{log}");

    // The time limit: a hook that outstays it is stopped, with all it
    // started, and says so.
    let pidfile = t.path().join("hook-pid");
    let id = t.spawn_id(&[
        "--hook-timeout",
        "500ms",
        "--on-exit",
        &format!("sleep 30 & echo $! > {}; wait", sh_quote(s(&pidfile))),
        "--",
        "true",
    ]);
    assert!(wait_file(&pidfile, LONG));
    let log_path = t.session_dir(&id).join("hooks.log");
    assert!(
        eventually(LONG, || file_text(&log_path)
            .contains("killed at the time limit")),
        "{}",
        file_text(&log_path)
    );
    let pid: i32 = file_text(&pidfile).trim().parse().unwrap();
    assert!(
        eventually(LONG, || !is_alive(pid)),
        "the hook's sleep {pid} survived"
    );
    t.spawn(&["--hook-timeout", "1s", "--", "true"])
        .expect_usage_error_naming("--hook-timeout");
}

//! codex-spawn and its supervisor, run as a user runs them: one test per
//! "Done when" item of issue 2, then the options.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use shared::Status;

use crate::support::*;

/// codex-spawn's path, after checking that its supervisor is built too.
fn spawn_bin() -> String {
    bin("codex-supervisor");
    s(&bin("codex-spawn")).to_string()
}

// ---------------------------------------------------------------------
// The basic session: exit code, exact logs, modes, under two umasks.
// ---------------------------------------------------------------------

const OUT_ERR_EXIT3: &str = "echo out; echo err >&2; sleep 1; exit 3";

/// Runs codex-spawn from a shell whose umask is `umask`.
fn spawn_under_umask(t: &TestRoot, umask: &str, args: &[&str]) -> Output {
    t.command("sh")
        .arg("-c")
        .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
        .arg(spawn_bin())
        .arg("--root")
        .arg(t.root())
        .args(args)
        .run()
}

fn logs_exit_code_and_modes(umask: &str) {
    let t = TestRoot::new(&format!("basic-{umask}"));
    let out = spawn_under_umask(&t, umask, &["--", "sh", "-c", OUT_ERR_EXIT3]);
    let id = out.id();
    out.check(
        is_generated_id(&id),
        "a generated id has the form adjective-animal-xxxx",
    );
    out.check(
        out.elapsed < Duration::from_secs(5),
        "codex-spawn must return at once, not when the command ends",
    );

    // Right after: running, with the supervisor's and the command's pids.
    let rec = t.record(&id);
    let ctx = || format!("{rec:#}\n{}", t.listing());
    assert_eq!(rec["state"], "running", "{}", ctx());
    assert_eq!(rec["id"], id.as_str(), "{}", ctx());
    assert_eq!(rec["kind"], "cmd", "{}", ctx());
    assert_eq!(rec["argv"], json!(["sh", "-c", OUT_ERR_EXIT3]), "{}", ctx());
    assert_eq!(t.status(&id), Status::Running, "{}", ctx());
    let sup = int(&rec, "supervisor_pid") as i32;
    let pid = int(&rec, "pid") as i32;
    assert_ne!(sup, pid, "{}", ctx());
    assert!(is_alive(sup), "supervisor {sup} is not running\n{}", ctx());
    assert!(is_alive(pid), "command {pid} is not running\n{}", ctx());
    // codex-spawn returns once the command runs; the supervisor's image
    // may still be loading in the process that started it (issue 21).
    let exe = || fs::read_link(format!("/proc/{sup}/exe")).unwrap_or_default();
    eventually(WAIT, || {
        exe().to_string_lossy().contains("codex-supervisor")
    });
    let exe = exe();
    assert!(
        exe.to_string_lossy().contains("codex-supervisor"),
        "supervisor_pid {sup} runs {exe:?}, not codex-supervisor\n{}",
        ctx()
    );
    // The command was really exec'd before codex-spawn returned.
    assert_eq!(
        cmdline(pid),
        ["sh", "-c", OUT_ERR_EXIT3],
        "pid {pid} does not run the command\n{}",
        ctx()
    );
    assert!(
        has_env(pid, &bg_id(&id)),
        "the command lacks {}",
        bg_id(&id)
    );
    assert_eq!(pgrp(pid), Some(pid), "the command leads its own group");
    assert_eq!(int(&rec, "pgid") as i32, pid, "{}", ctx());
    // Start times recorded, so that a reused pid is told apart.
    assert_eq!(
        rec["pid_start_time"].as_u64(),
        shared::host::process_start_time(pid),
        "{}",
        ctx()
    );
    assert_eq!(
        rec["supervisor_start_time"].as_u64(),
        shared::host::process_start_time(sup),
        "{}",
        ctx()
    );
    // Detached: no controlling terminal, not in the caller's session.
    let me = std::process::id() as i32;
    assert_ne!(
        sid(sup),
        sid(me),
        "the supervisor must be in a session of its own"
    );
    assert_eq!(tty_nr(sup), Some(0), "the supervisor has a controlling tty");
    assert_eq!(tty_nr(pid), Some(0), "the command has a controlling tty");
    // Modes while it runs.
    assert_eq!(mode(t.root()), 0o700, "root mode under umask {umask}");
    let bad = wrong_modes(&t.session_dir(&id));
    assert!(bad.is_empty(), "under umask {umask}: {bad:#?}\n{}", ctx());

    // Then: exited 3, the exact bytes, the same modes.
    let rec = t.wait_ended(&id, WAIT);
    let ctx = || format!("{rec:#}\n{}", t.listing());
    assert_eq!(rec["state"], "exited", "{}", ctx());
    assert_eq!(rec["exit_code"], 3, "{}", ctx());
    assert_eq!(rec["signal"], Value::Null, "{}", ctx());
    assert_eq!(rec["timed_out"], false, "{}", ctx());
    assert_eq!(rec["stdout_bytes"], 4, "{}", ctx());
    assert_eq!(rec["stderr_bytes"], 4, "{}", ctx());
    assert_eq!(rec["dropped_bytes"], 0, "{}", ctx());
    assert!(
        rec["started_at"].is_string() && rec["ended_at"].is_string(),
        "{}",
        ctx()
    );
    assert_eq!(t.read(&id, "stdout.log"), b"out\n", "{}", ctx());
    assert_eq!(t.read(&id, "stderr.log"), b"err\n", "{}", ctx());
    assert_eq!(mode(t.root()), 0o700);
    let bad = wrong_modes(&t.session_dir(&id));
    assert!(bad.is_empty(), "under umask {umask}: {bad:#?}\n{}", ctx());
    assert!(
        eventually(Duration::from_secs(3), || !is_alive(sup)),
        "the supervisor {sup} outlives its session"
    );
}

#[test]
fn exit_code_logs_and_modes_under_umask_022() {
    logs_exit_code_and_modes("022");
}

#[test]
fn exit_code_logs_and_modes_under_umask_077() {
    logs_exit_code_and_modes("077");
}

/// The script that prints its umask, signal mask and ignored signals
/// (`exec`, so that no shell blocks signals around a fork meanwhile).
const SHOW_UMASK_AND_SIGNALS: &str = "umask; exec grep -E '^Sig(Blk|Ign):' /proc/self/status";

/// Parses what [`SHOW_UMASK_AND_SIGNALS`] printed: (umask, blocked, ignored).
fn umask_and_signals(out: &str) -> (String, u64, u64) {
    let mut lines = out.lines();
    let umask = lines.next().unwrap_or_default().to_string();
    let mut hex = |name: &str| {
        let line = lines.next().unwrap_or_default();
        let value = line.strip_prefix(name).map(str::trim).unwrap_or_default();
        u64::from_str_radix(value, 16).unwrap_or_else(|_| panic!("bad line {line:?} in {out:?}"))
    };
    let blocked = hex("SigBlk:");
    let ignored = hex("SigIgn:");
    (umask, blocked, ignored)
}

/// The bit of signal `sig` in a /proc signal set.
fn bit(sig: Signal) -> u64 {
    1 << (sig as i32 - 1)
}

#[test]
fn the_command_gets_the_callers_umask_and_default_signals() {
    let t = TestRoot::new("umask-signals");
    let caller = "umask 027; trap '' HUP; exec \"$0\" \"$@\"";
    // Control: the same caller running the script directly passes on what
    // the session must not inherit.
    let mut direct = t.command("sh");
    direct.args(["-c", caller, "sh", "-c", SHOW_UMASK_AND_SIGNALS]);
    block_term_and_usr1(&mut direct);
    let (umask, blocked, ignored) = umask_and_signals(&direct.run().expect_success().stdout_str());
    assert_eq!(umask, "0027");
    assert_ne!(
        blocked & bit(Signal::SIGTERM),
        0,
        "control: SIGTERM not blocked"
    );
    assert_ne!(
        ignored & bit(Signal::SIGHUP),
        0,
        "control: SIGHUP not ignored"
    );

    let mut cmd = t.command("sh");
    cmd.args(["-c", caller, &spawn_bin()])
        .arg("--root")
        .arg(t.root())
        .args(["--", "sh", "-c", SHOW_UMASK_AND_SIGNALS]);
    block_term_and_usr1(&mut cmd);
    let id = cmd.run().id();
    let rec = t.wait_ended(&id, WAIT);
    assert_eq!(rec["exit_code"], 0, "{rec:#}");
    let log = String::from_utf8_lossy(&t.read(&id, "stdout.log")).into_owned();
    let (umask, blocked, ignored) = umask_and_signals(&log);
    assert_eq!(umask, "0027", "the command must get the caller's umask");
    assert_eq!(
        blocked, 0,
        "the command must start with no signal blocked: {log}"
    );
    // Signals 1 to 31. (32 and 33 are glibc's internal SIGCANCEL and
    // SIGSETXID: glibc's posix_spawn leaves them ignored in its children,
    // and glibc and musl install their own handlers when they use them.)
    assert_eq!(
        ignored & 0x7fff_ffff,
        0,
        "the command must start with no signal ignored: {log}"
    );
}

/// Makes `cmd` start with SIGTERM and SIGUSR1 blocked.
fn block_term_and_usr1(cmd: &mut TestCommand) {
    // SAFETY: between fork and exec this only calls sigemptyset, sigaddset
    // and sigprocmask, which are async-signal-safe and allocate nothing.
    unsafe {
        cmd.cmd_mut().pre_exec(|| {
            let mut set = SigSet::empty();
            set.add(Signal::SIGTERM);
            set.add(Signal::SIGUSR1);
            sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(io::Error::from)
        });
    }
}

// ---------------------------------------------------------------------
// Surviving the terminal.
// ---------------------------------------------------------------------

#[test]
fn a_session_survives_the_death_of_its_terminal() {
    let t = TestRoot::new("terminal");
    let spawn = spawn_bin();
    let d = s(t.path()).to_string();
    let root = s(t.root()).to_string();
    // Each session waits for its go file, so nothing depends on timing.
    let line = |n: u32| {
        format!(
            "{spawn} --root {root} -- sh -c 'while [ ! -e \"$0\" ]; do sleep 0.05; done; echo done' \
             {d}/go{n} > {d}/id{n}.part 2> {d}/err{n} && mv {d}/id{n}.part {d}/id{n}"
        )
    };
    // Session 1 is spawned by the pane's shell, whose controlling terminal
    // is the pane's pty; session 2 from `setsid bash -c` in that pane.
    let script = t.script(
        "term.sh",
        &format!(
            "{}\nsetsid -w bash -c {}\necho ready > {d}/ready\nexec sleep 300\n",
            line(1),
            sh_quote(&line(2))
        ),
    );
    let mut tmux = Tmux::script(&t, &script);
    let ready = wait_file(&t.path().join("ready"), WAIT);
    let screen = tmux.capture().stdout_str();
    let err = |n| fs::read_to_string(t.path().join(format!("err{n}"))).unwrap_or_default();
    assert!(
        ready,
        "the pane never got both sessions spawned\nscreen:\n{screen}\nerr1: {}\nerr2: {}\n{}",
        err(1),
        err(2),
        t.listing()
    );
    assert_ne!(
        tty_nr(tmux.pane),
        Some(0),
        "the pane's shell has no terminal"
    );
    let ids: Vec<String> = (1..=2)
        .map(
            |n| match fs::read_to_string(t.path().join(format!("id{n}"))) {
                Ok(id) => id.trim_end().to_string(),
                Err(_) => panic!(
                    "codex-spawn {n} in the pane failed: {}\n{}",
                    err(n),
                    t.listing()
                ),
            },
        )
        .collect();
    for id in &ids {
        assert_eq!(t.status(id), Status::Running, "{}", t.listing());
    }

    // Close the terminal: the server goes, and with it the pty.
    tmux.kill_server();
    assert!(
        !is_alive(tmux.pane),
        "the pane's shell survived its terminal"
    );

    for (n, id) in ids.iter().enumerate() {
        let rec = t.record(id);
        assert_eq!(
            t.status(id),
            Status::Running,
            "session {} died with its terminal\n{}",
            n + 1,
            t.listing()
        );
        assert!(
            is_alive(int(&rec, "pid") as i32),
            "the command of {id} is gone"
        );
        fs::write(t.path().join(format!("go{}", n + 1)), "").unwrap();
    }
    for id in &ids {
        let rec = t.wait_ended(id, WAIT);
        assert_eq!(rec["exit_code"], 0, "{rec:#}");
        assert_eq!(rec["signal"], Value::Null, "{rec:#}");
        assert_eq!(t.read(id, "stdout.log"), b"done\n");
    }
}

// ---------------------------------------------------------------------
// Failures to start.
// ---------------------------------------------------------------------

/// Fails unless codex-spawn exited `code` with one error line naming
/// `cmd`, printed nothing on stdout and left nothing in the root.
fn expect_not_started(t: &TestRoot, out: &Output, code: i32, cmd: &str) {
    out.expect_code(code).expect_one_error_line(cmd);
    out.check(out.stdout.is_empty(), "nothing may be printed on stdout");
    out.check(
        t.entries().is_empty(),
        "a command that cannot start must leave nothing in the root",
    );
}

#[test]
fn a_missing_command_exits_127_leaving_nothing() {
    let t = TestRoot::new("127");
    for cmd in [
        "no-such-command-e2e",
        "./no-such-file",
        "/nonexistent/dir/cmd",
    ] {
        let out = t.spawn(&["--", cmd, "arg"]);
        expect_not_started(&t, &out, 127, cmd);
    }
}

#[test]
fn a_non_executable_command_exits_126_leaving_nothing() {
    let t = TestRoot::new("126");
    let file = t.path().join("not-executable");
    fs::write(&file, "#!/bin/sh\necho hi\n").unwrap();
    for cmd in [s(&file), s(t.path())] {
        let out = t.spawn(&["--", cmd]);
        expect_not_started(&t, &out, 126, cmd);
    }
}

// ---------------------------------------------------------------------
// A killed supervisor.
// ---------------------------------------------------------------------

#[test]
fn a_killed_supervisor_reads_as_lost_even_when_its_pid_is_reused() {
    let t = TestRoot::new("lost");
    let id = t.spawn_id(&["--", "sleep", "300"]);
    let rec = t.record(&id);
    let sup = int(&rec, "supervisor_pid") as i32;
    let pgid = int(&rec, "pgid") as i32;
    assert_eq!(t.status(&id), Status::Running, "{}", t.listing());

    signal(sup, Signal::SIGKILL);
    let st = t.wait_status(&id, |s| s != Status::Running, WAIT);
    assert_eq!(st, Status::Lost, "{}", t.listing());
    for _ in 0..10 {
        assert_eq!(t.status(&id), Status::Lost, "{}", t.listing());
        thread::sleep(POLL);
    }

    // The pids of the record now name another live process (this one),
    // start times included: still lost, never running.
    let me = std::process::id() as i32;
    let start = shared::host::process_start_time(me).expect("own start time");
    let mut edited = t.record(&id);
    edited["pid"] = json!(me);
    edited["supervisor_pid"] = json!(me);
    edited["pid_start_time"] = json!(start);
    edited["supervisor_start_time"] = json!(start);
    t.write_record(&id, &edited);
    assert_eq!(t.status(&id), Status::Lost, "{}", t.listing());
    let listed = shared::Root::open(t.root(), shared::Access::Read)
        .and_then(|r| r.list())
        .expect("listing the root");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, Status::Lost, "{}", t.listing());

    // The orphaned command: end it by its process group, after checking
    // that every member of the group belongs to this session.
    let members = group_members(pgid);
    if !members.is_empty() {
        assert!(
            members.iter().all(|&p| has_env(p, &bg_id(&id))),
            "group {pgid} holds foreign processes:\n{}",
            describe(&members)
        );
        let _ = kill(Pid::from_raw(-pgid), Signal::SIGKILL);
    }
    assert!(eventually(Duration::from_secs(3), || procs_running(
        &id,
        &["sleep", "300"]
    )
    .is_empty()));
}

#[test]
fn a_session_that_ends_normally_never_reads_as_lost() {
    // A reader polling as fast as it can while sessions end must see
    // running, then exited: never lost, which means a killed supervisor
    // (and invites codex-rm to kill leftovers).
    let t = TestRoot::new("never-lost");
    let mut seen_lost = Vec::new();
    for _ in 0..150 {
        let id = t.spawn_id(&["--", "true"]);
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let st = t.status(&id);
            if st == Status::Lost {
                seen_lost.push(id.clone());
            }
            if st == Status::Exited {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{id} still {st}\n{}",
                t.listing()
            );
        }
    }
    assert!(
        seen_lost.is_empty(),
        "{} of 150 sessions that exited normally read as lost for a moment: {seen_lost:?}",
        seen_lost.len()
    );
}

// ---------------------------------------------------------------------
// What the command leaves behind, and the signals it starts with.
// ---------------------------------------------------------------------

#[test]
fn nothing_the_command_started_outlives_the_session() {
    let t = TestRoot::new("leftovers");
    let sleep = ["sleep", "300"];
    // The exact command of the issue...
    let a = t.spawn_id(&["--", "bash", "-c", "setsid sleep 300 & exit 0"]);
    // ...and one held open until the test has seen its sleep run, so that
    // the check below cannot pass for want of a sleep.
    let go = t.path().join("go");
    let b = t.spawn_id(&[
        "--",
        "bash",
        "-c",
        "setsid sleep 300 & while [ ! -e \"$0\" ]; do sleep 0.05; done; exit 0",
        s(&go),
    ]);
    assert!(
        eventually(WAIT, || !procs_running(&b, &sleep).is_empty()),
        "the setsid sleep of {b} never ran"
    );
    let escaped = procs_running(&b, &sleep)[0];
    let pgid = int(&t.record(&b), "pgid") as i32;
    assert_ne!(
        pgrp(escaped),
        Some(pgid),
        "the sleep did not leave the group"
    );
    fs::write(&go, "").unwrap();

    for id in [&a, &b] {
        let rec = t.wait_ended(id, WAIT);
        assert_eq!(rec["exit_code"], 0, "{rec:#}");
        // A kill takes effect a moment after it is sent; a sleep that was
        // never killed stays 300 s.
        eventually(Duration::from_secs(2), || {
            procs_running(id, &sleep).is_empty()
        });
        let left = procs_running(id, &sleep);
        assert!(
            left.is_empty(),
            "session {id} has ended but left running:\n{}",
            describe(&left)
        );
    }
}

#[test]
fn signals_ignored_by_the_caller_get_their_default_in_the_session() {
    let t = TestRoot::new("sighup");
    let spawn = spawn_bin();
    let spawn_ignoring = |script: &str| {
        t.command("sh")
            .args(["-c", "trap '' HUP PIPE; exec \"$0\" \"$@\"", &spawn])
            .arg("--root")
            .arg(t.root())
            .args(["--", "sh", "-c", script])
            .run()
            .id()
    };
    let hup = spawn_ignoring("kill -HUP $$; sleep 5");
    let pipe = spawn_ignoring("kill -PIPE $$; sleep 5");
    for (id, name, code) in [(&hup, "SIGHUP", 129), (&pipe, "SIGPIPE", 141)] {
        let rec = t.wait_ended(id, WAIT);
        assert_eq!(rec["signal"], name, "{rec:#}");
        assert_eq!(rec["exit_code"], code, "{rec:#}");
    }
}

// ---------------------------------------------------------------------
// Returning at once, and many at once.
// ---------------------------------------------------------------------

#[test]
fn command_substitution_returns_at_once() {
    let t = TestRoot::new("subst");
    let spawn = spawn_bin();
    for script in [
        "x=$(\"$0\" --root \"$1\" -- sleep 5); echo \"$x\"",
        "x=$(\"$0\" --root \"$1\" -- sleep 5 2>&1); echo \"$x\"",
    ] {
        let out = t
            .command("sh")
            .args(["-c", script, &spawn, s(t.root())])
            .run();
        let id = out.id();
        out.check(
            out.elapsed < Duration::from_secs(3),
            "x=$(codex-spawn -- sleep 5) waited for the session: \
             the supervisor holds a descriptor of the caller",
        );
        assert_eq!(t.status(&id), Status::Running, "{}", t.listing());
    }
}

#[test]
fn a_hundred_spawns_at_once() {
    let t = TestRoot::new("hundred");
    let n = 100;
    let barrier = Barrier::new(n);
    let outs: Vec<Output> = thread::scope(|sc| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                sc.spawn(|| {
                    let mut cmd = t.spawn_cmd();
                    cmd.args(["--", "sh", "-c", "echo $CODEX_BACKGROUND_ID"]);
                    barrier.wait();
                    cmd.run()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a spawn thread failed"))
            .collect()
    });
    let ids: Vec<String> = outs.iter().map(Output::id).collect();
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), n, "duplicate ids: {ids:?}");
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(t.entries(), sorted, "the root holds exactly the sessions");
    for id in &ids {
        let rec = t.wait_ended(id, WAIT * 2);
        assert_eq!(rec["exit_code"], 0, "{rec:#}");
        assert_eq!(t.read(id, "stdout.log"), format!("{id}\n").as_bytes());
    }
}

// ---------------------------------------------------------------------
// Options: bad input, names, timeout, env, labels, --json, -C, -i, logs.
// ---------------------------------------------------------------------

#[test]
fn bad_input_is_refused_leaving_nothing() {
    let t = TestRoot::new("bad-input");
    type Case<'a> = (&'a [&'a str], &'a [i32], Option<&'a str>);
    let cases: &[Case] = &[
        (&["--env", "FOO", "--", "true"], &[2], Some("FOO")),
        (&["--timeout", "xyz", "--", "true"], &[2], None),
        (&["--max-log-size", "lots", "--", "true"], &[2], None),
        (&["--name", "../x", "--", "true"], &[2, 125], Some("../x")),
        (&["--name", "123", "--", "true"], &[2, 125], Some("123")),
        (&["-i", "exec", "p"], &[2], None),
        (&[], &[2], None),
    ];
    for (args, codes, one_line) in cases {
        let out = t.spawn(args);
        out.check(
            out.code().is_some_and(|c| codes.contains(&c)),
            &format!("expected exit code in {codes:?}"),
        );
        out.check(
            !out.stderr.is_empty(),
            "the error must be explained on stderr",
        );
        out.check(out.stdout.is_empty(), "nothing may be printed on stdout");
        if let Some(needle) = one_line {
            out.expect_usage_error_naming(needle);
        }
        out.check(t.entries().is_empty(), "no session directory may be left");
    }
}

#[test]
fn a_name_is_the_id_and_is_never_reused() {
    let t = TestRoot::new("name");
    let id = t.spawn_id(&["--name", "job-1", "--", "sleep", "30"]);
    assert_eq!(id, "job-1");
    assert_eq!(t.status(&id), Status::Running);
    let out = t.spawn(&["--name", "job-1", "--", "true"]);
    out.check(!out.status.success(), "a taken name must be refused");
    out.expect_one_error_line("job-1");
    out.check(t.entries() == ["job-1"], "nothing else may be created");
    assert_eq!(t.record("job-1")["argv"], json!(["sleep", "30"]));
    assert_eq!(t.status("job-1"), Status::Running);
}

#[test]
fn timeout_stops_the_command_and_says_so() {
    let t = TestRoot::new("timeout");
    let id = t.spawn_id(&["--timeout", "1s", "--", "sleep", "30"]);
    let rec = t.wait_ended(&id, WAIT);
    assert_eq!(rec["timed_out"], true, "{rec:#}");
    assert_eq!(rec["signal"], "SIGTERM", "{rec:#}");
    assert_eq!(rec["exit_code"], 143, "{rec:#}");
    let id = t.spawn_id(&["--timeout", "30s", "--", "true"]);
    let rec = t.wait_ended(&id, WAIT);
    assert_eq!(rec["timed_out"], false, "{rec:#}");
    assert_eq!(rec["exit_code"], 0, "{rec:#}");
    // 0 is no timeout at all (as for GNU timeout), not an instant one.
    let id = t.spawn_id(&[
        "--timeout",
        "0",
        "--max-log-size",
        "0",
        "--",
        "sleep",
        "0.5",
    ]);
    let rec = t.wait_ended(&id, WAIT);
    assert_eq!(rec["timed_out"], false, "{rec:#}");
    assert_eq!(rec["exit_code"], 0, "{rec:#}");
    assert_eq!(rec["timeout_ms"], Value::Null, "{rec:#}");
    assert_eq!(rec["max_log_size"], Value::Null, "{rec:#}");
}

#[test]
fn sigterm_to_the_supervisor_stops_the_whole_group() {
    let t = TestRoot::new("sigterm");
    let sleep = ["sleep", "300"];
    let id = t.spawn_id(&["--", "sh", "-c", "sleep 300 & sleep 300; wait"]);
    assert!(eventually(WAIT, || procs_running(&id, &sleep).len() == 2));
    signal(
        int(&t.record(&id), "supervisor_pid") as i32,
        Signal::SIGTERM,
    );
    let rec = t.wait_ended(&id, WAIT);
    assert_eq!(rec["signal"], "SIGTERM", "{rec:#}");
    assert_eq!(rec["exit_code"], 143, "{rec:#}");
    assert_eq!(rec["timed_out"], false, "{rec:#}");
    eventually(Duration::from_secs(2), || {
        procs_running(&id, &sleep).is_empty()
    });
    let left = procs_running(&id, &sleep);
    assert!(left.is_empty(), "left running:\n{}", describe(&left));

    // A command that ignores SIGTERM is killed at once by a second
    // SIGTERM: long before the 10 s grace would end it. Two signals sent
    // close together can merge into one, so the second is repeated until
    // the session ends.
    let id = t.spawn_id(&["--", "sh", "-c", "trap '' TERM; sleep 300"]);
    assert!(eventually(WAIT, || procs_running(&id, &sleep).len() == 1));
    let sup = int(&t.record(&id), "supervisor_pid") as i32;
    let first = Instant::now();
    signal(sup, Signal::SIGTERM);
    thread::sleep(Duration::from_millis(300));
    let killed = eventually(Duration::from_secs(7), || {
        if t.lock_held(&id) && is_alive(sup) {
            let _ = kill(Pid::from_raw(sup), Signal::SIGTERM);
        }
        t.status(&id) == Status::Exited && !t.lock_held(&id)
    });
    assert!(
        killed,
        "a second SIGTERM did not kill at once: the session still runs {:?} after the first\n{}",
        first.elapsed(),
        t.listing()
    );
    let rec = t.record(&id);
    assert_eq!(rec["signal"], "SIGKILL", "{rec:#}");
    assert_eq!(rec["exit_code"], 137, "{rec:#}");
    assert_eq!(rec["timed_out"], false, "{rec:#}");
}

/// The milliseconds between two RFC 3339 fields of a record.
fn millis_between(rec: &Value, from: &str, to: &str) -> i64 {
    let at = |k: &str| {
        let v = rec[k].as_str().unwrap_or_else(|| panic!("no {k}: {rec:#}"));
        shared::Timestamp::parse_rfc3339(v)
            .unwrap_or_else(|e| panic!("{k} {v:?}: {e}"))
            .as_nanos()
    };
    (at(to) - at(from)) / 1_000_000
}

/// `--timeout` on a command that ignores SIGTERM: SIGTERM at the timeout,
/// then SIGKILL 10 s later (not earlier, and not never), recorded as
/// timed out.
#[test]
fn timeout_kills_a_command_that_ignores_sigterm_10s_later() {
    let t = TestRoot::new("timeout-kill");
    let id = t.spawn_id(&[
        "--timeout",
        "1s",
        "--",
        "sh",
        "-c",
        "trap '' TERM; sleep 300",
    ]);
    let rec = t.wait_ended(&id, Duration::from_secs(40));
    assert_eq!(rec["timed_out"], true, "{rec:#}");
    assert_eq!(rec["signal"], "SIGKILL", "{rec:#}");
    assert_eq!(rec["exit_code"], 137, "{rec:#}");
    // 1 s of run, 10 s of grace: the supervisor's own clock says when.
    let ran = millis_between(&rec, "started_at", "ended_at");
    assert!(
        (10_500..30_000).contains(&ran),
        "killed {ran} ms after its start, not about 11 s (1 s timeout + 10 s grace): {rec:#}"
    );
}

#[test]
fn sigterm_stops_a_session_whose_caller_blocked_it() {
    let t = TestRoot::new("sigterm-blocked");
    let mut cmd = t.spawn_cmd();
    cmd.args(["--", "sleep", "300"]);
    block_term_and_usr1(&mut cmd);
    let id = cmd.run().id();
    signal(
        int(&t.record(&id), "supervisor_pid") as i32,
        Signal::SIGTERM,
    );
    let rec = t.wait_ended(&id, WAIT);
    assert_eq!(rec["signal"], "SIGTERM", "{rec:#}");
    assert_eq!(rec["exit_code"], 143, "{rec:#}");
}

#[test]
fn env_values_reach_the_command_but_never_the_disk() {
    let t = TestRoot::new("env");
    let secret = "s3cr3t=e2e value";
    let id = t.spawn_id(&[
        "-e",
        &format!("FOO={secret}"),
        "--env",
        "BAR=x",
        "--",
        "sh",
        "-c",
        "printf %s \"$FOO\" | od -An -tx1",
    ]);
    let rec = t.wait_ended(&id, WAIT);
    assert_eq!(rec["exit_code"], 0, "{rec:#}");
    let hex: Vec<String> = secret.bytes().map(|b| format!("{b:02x}")).collect();
    let log = String::from_utf8_lossy(&t.read(&id, "stdout.log")).into_owned();
    assert_eq!(
        log.split_whitespace().collect::<Vec<_>>(),
        hex,
        "the command did not get FOO={secret:?}"
    );
    let names: Vec<&str> = rec["env"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(names.contains(&"FOO") && names.contains(&"BAR"), "{rec:#}");
    let mut stack = vec![t.session_dir(&id)];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(fs::read_dir(&p).unwrap().flatten().map(|e| e.path()));
        } else if let Ok(bytes) = fs::read(&p) {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "the value of FOO is written in {}",
                p.display()
            );
        }
    }
}

#[test]
fn json_output_labels_and_working_directory() {
    let t = TestRoot::new("json");
    let work = t.path().join("work");
    fs::create_dir(&work).unwrap();
    let out = t.spawn(&[
        "--json",
        "-l",
        "team=a",
        "--label",
        "prio=high",
        "-C",
        s(&work),
        "--",
        "sleep",
        "30",
    ]);
    out.expect_success();
    let text = out.stdout_str();
    out.check(
        text.ends_with('\n') && text.matches('\n').count() == 1,
        "--json prints exactly one line",
    );
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| out.fail(&format!("{e}")));
    for key in [
        "index",
        "id",
        "kind",
        "status",
        "exit_code",
        "signal",
        "timed_out",
        "pid",
        "supervisor_pid",
        "created_at",
        "started_at",
        "ended_at",
        "cwd",
        "argv",
        "prompt",
        "tty",
        "stdin",
        "labels",
        "stdout_bytes",
        "stderr_bytes",
        "dropped_bytes",
        "dir",
        "error",
        "agent",
    ] {
        out.check(
            v.get(key).is_some(),
            &format!("--json lacks the field {key}"),
        );
    }
    // codex-spawn knows no row number: `index` is null, not absent or 0.
    out.check(v["index"].is_null(), "index is not null");
    out.check(v["agent"].is_null(), "a cmd session has an agent summary");
    let id = v["id"].as_str().expect("id").to_string();
    let rec = t.record(&id);
    let labels = json!({"team": "a", "prio": "high"});
    assert_eq!(v["status"], "running", "{v:#}");
    assert_eq!(v["kind"], "cmd", "{v:#}");
    assert_eq!(v["argv"], json!(["sleep", "30"]), "{v:#}");
    assert_eq!(v["labels"], labels, "{v:#}");
    assert_eq!(v["pid"], rec["pid"], "{v:#}");
    assert_eq!(v["supervisor_pid"], rec["supervisor_pid"], "{v:#}");
    assert_eq!(v["exit_code"], Value::Null, "{v:#}");
    assert_eq!(v["tty"], false, "{v:#}");
    assert_eq!(v["stdin"], false, "{v:#}");
    assert!(
        v["created_at"].as_str().is_some_and(|c| c.ends_with('Z')),
        "{v:#}"
    );
    let same = |a: &str, b: &Path| fs::canonicalize(a).ok() == fs::canonicalize(b).ok();
    assert!(
        same(v["dir"].as_str().unwrap_or(""), &t.session_dir(&id)),
        "{v:#}"
    );
    assert!(same(v["cwd"].as_str().unwrap_or(""), &work), "{v:#}");
    assert_eq!(rec["labels"], labels, "{rec:#}");
    assert!(same(rec["cwd"].as_str().unwrap_or(""), &work), "{rec:#}");

    // The command runs in -C DIR, else in the caller's directory.
    let elsewhere = t.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let in_work = t.spawn_id(&["-C", s(&work), "--", "sh", "-c", "pwd -P"]);
    let in_caller = t
        .spawn_cmd()
        .current_dir(&elsewhere)
        .args(["--", "sh", "-c", "pwd -P"])
        .run()
        .id();
    for (id, dir) in [(in_work, &work), (in_caller, &elsewhere)] {
        let rec = t.wait_ended(&id, WAIT);
        assert_eq!(rec["exit_code"], 0, "{rec:#}");
        let want = format!("{}\n", fs::canonicalize(dir).unwrap().display());
        assert_eq!(String::from_utf8_lossy(&t.read(&id, "stdout.log")), want);
    }
}

#[test]
fn stdin_is_dev_null_unless_kept_open() {
    let t = TestRoot::new("stdin");
    let id = t
        .spawn_cmd()
        .args(["--", "cat"])
        .stdin("the caller's input\n")
        .run()
        .id();
    let rec = t.wait_ended(&id, WAIT);
    assert_eq!(rec["exit_code"], 0, "{rec:#}");
    assert_eq!(rec["stdin"], false, "{rec:#}");
    assert_eq!(
        String::from_utf8_lossy(&t.read(&id, "stdout.log")),
        "",
        "the command read the caller's stdin"
    );
    let id = t.spawn_id(&["-i", "--", "cat"]);
    assert_eq!(t.record(&id)["stdin"], true);
    thread::sleep(Duration::from_millis(500));
    assert_eq!(
        t.status(&id),
        Status::Running,
        "with -i, cat must wait on its open stdin\n{}",
        t.listing()
    );
}

/// 5000 bytes of output written by seq in large writes (4 KiB), so that
/// single reads exceed the 1024-byte limit.
#[test]
fn max_log_size_rotates_keeping_one_previous_file() {
    let t = TestRoot::new("rotate");
    let id = t.spawn_id(&[
        "--max-log-size",
        "1024",
        "--",
        "seq",
        "-f",
        "line-%04g",
        "0",
        "499",
    ]);
    let rec = t.wait_ended(&id, WAIT);
    assert_eq!(rec["exit_code"], 0, "{rec:#}");
    assert_eq!(rec["stdout_bytes"], 5000, "{rec:#}");
    let all: String = (0..500).map(|i| format!("line-{i:04}\n")).collect();
    let cur = t.read(&id, "stdout.log");
    let prev = fs::read(t.session_dir(&id).join("stdout.log.1")).unwrap_or_default();
    let sizes = format!(
        "stdout.log {} bytes, stdout.log.1 {} bytes",
        cur.len(),
        prev.len()
    );
    assert!(
        cur.len() <= 1024 && prev.len() <= 1024,
        "--max-log-size 1024, yet a log file is larger: {sizes}"
    );
    assert!(!prev.is_empty(), "{sizes}");
    let mut tail = prev.clone();
    tail.extend_from_slice(&cur);
    assert!(
        all.as_bytes().ends_with(&tail),
        "the two files are not the end of the output, in order ({sizes})"
    );
    assert!(!t.session_dir(&id).join("stdout.log.2").exists());
    let bad = wrong_modes(&t.session_dir(&id));
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn a_file_size_limit_drops_output_but_not_the_session() {
    let t = TestRoot::new("fsize");
    // dash counts `ulimit -f` in 512-byte blocks: 4096 bytes per file.
    let id = t
        .command("sh")
        .args(["-c", "ulimit -f 8; exec \"$0\" \"$@\"", &spawn_bin()])
        .arg("--root")
        .arg(t.root())
        .args(["--", "sh", "-c", "head -c 20000 /dev/zero; echo done >&2"])
        .run()
        .id();
    let rec = t.wait_ended(&id, WAIT);
    assert_eq!(
        rec["exit_code"], 0,
        "the command must not be stopped: {rec:#}"
    );
    assert_eq!(rec["signal"], Value::Null, "{rec:#}");
    let logged = t.read(&id, "stdout.log").len() as i64;
    assert!(logged <= 4096, "stdout.log holds {logged} bytes");
    assert_eq!(int(&rec, "stdout_bytes"), logged, "{rec:#}");
    assert_eq!(
        int(&rec, "stdout_bytes") + int(&rec, "dropped_bytes"),
        20000,
        "every byte is either logged or counted as dropped: {rec:#}"
    );
    assert_eq!(t.read(&id, "stderr.log"), b"done\n", "{rec:#}");
    // The readers still work, and show the drop.
    let ps = t.tool("codex-ps", &["--json", &id]);
    ps.expect_success().check(
        ps.one_json()["dropped_bytes"] == rec["dropped_bytes"],
        "codex-ps --json does not show the dropped bytes",
    );
    let tail = t.tool("codex-tail", &["-n", "1", &id]);
    tail.expect_success()
        .check(tail.stderr == b"done\n", "codex-tail: the last line");
}

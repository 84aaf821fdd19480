//! Codex-aware sessions (issue 7), end to end with the real codex binary
//! (`scripts/test` installs it into `.cache/codex`) against the local model
//! server of `model.rs`: the agent summary in the record and codex-ps, the
//! rendering of codex-tail, `exec --resume`, codex-rm on a turn in flight,
//! and the interactive codex through codex-attach in tmux.
//!
//! codex retries forever when its server does not answer: every wait here
//! has a deadline, every session is started with `--timeout`, and the
//! harness ends every process a test started.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use shared::Status;

use crate::support::model::*;
use crate::support::*;

/// How long a scripted codex turn may take (codex starts in well under a
/// second here; the margin is for loaded CI machines).
const CODEX_WAIT: Duration = Duration::from_secs(60);
/// The `--timeout` every codex session gets: nothing outlives a test.
const SESSION_TIMEOUT: &str = "180s";

// ---------------------------------------------------------------------
// Helpers

/// A model server scripted with `replies`, the CODEX_HOME pointing at it
/// and the codex binary.
struct Codex {
    server: ModelServer,
    home: PathBuf,
    bin: PathBuf,
}

impl Codex {
    fn new(t: &TestRoot, replies: impl IntoIterator<Item = Reply>) -> Codex {
        let bin = codex_bin();
        let server = ModelServer::start(replies);
        let home = codex_home(t.path(), &server, "");
        Codex { server, home, bin }
    }

    /// `codex-spawn --codex-bin BIN -e CODEX_HOME=HOME --timeout T`, then
    /// `opts`, then `mode_args` (`exec ...`, `repl ...`).
    fn spawn(&self, t: &TestRoot, opts: &[&str], mode_args: &[&str]) -> String {
        let home = format!("CODEX_HOME={}", s(&self.home));
        let mut args = vec![
            "--codex-bin",
            s(&self.bin),
            "-e",
            &home,
            "--timeout",
            SESSION_TIMEOUT,
        ];
        args.extend_from_slice(opts);
        args.extend_from_slice(mode_args);
        // HOME in the temp dir: nothing of codex's lands in the real one.
        t.spawn_cmd().env("HOME", t.path()).args(args).run().id()
    }

    /// An exec session of `prompt` with `--skip-git-repo-check`.
    fn exec(&self, t: &TestRoot, opts: &[&str], prompt: &str) -> String {
        self.spawn(t, opts, &["exec", prompt, "--skip-git-repo-check"])
    }

    /// Waits until session `id` has ended; its final record.
    fn wait_ended(&self, t: &TestRoot, id: &str) -> Value {
        let deadline = Instant::now() + CODEX_WAIT;
        while Instant::now() < deadline {
            if t.status(id) == Status::Exited && !t.lock_held(id) {
                return t.record(id);
            }
            std::thread::sleep(POLL);
        }
        panic!(
            "codex session {id} has not ended after {CODEX_WAIT:?}\n{}\n{}",
            self.context(t, id),
            t.listing()
        );
    }

    /// The session's logs and the server's requests, for failure messages.
    fn context(&self, t: &TestRoot, id: &str) -> String {
        // A terminal's output would garble the failure message: escaped.
        let log = |f: &str| {
            let text = file_text(&t.session_dir(id).join(f));
            text.lines()
                .map(|l| format!("{}\n", l.escape_debug()))
                .collect::<String>()
        };
        format!(
            "--- {id} stdout.log ---\n{}--- {id} stderr.log ---\n{}{}",
            log("stdout.log"),
            log("stderr.log"),
            self.server.describe()
        )
    }
}

/// `codex-ps --json ID`: its one object.
fn ps_json(t: &TestRoot, id: &str) -> Value {
    let out = t.tool("codex-ps", &["--json", id]);
    out.expect_success();
    let text = out.stdout_str();
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() != 1 {
        out.fail("expected exactly one line");
    }
    serde_json::from_str(lines[0]).unwrap_or_else(|e| out.fail(&format!("not JSON: {e}")))
}

/// The agent summary of `id` as codex-ps --json gives it, checked to have
/// every field of the contract with its type.
fn agent(t: &TestRoot, id: &str) -> Value {
    let row = ps_json(t, id);
    let a = row["agent"].clone();
    let ok = a.is_object()
        && ["thread_id", "last_message", "last_error"]
            .iter()
            .all(|k| a[k].is_null() || a[k].is_string())
        && [
            "turns",
            "input_tokens",
            "cached_input_tokens",
            "output_tokens",
        ]
        .iter()
        .all(|k| a[k].is_u64())
        && ["working", "done", "failed"].contains(&a["state"].as_str().unwrap_or(""));
    assert!(
        ok,
        "codex-ps --json {id}: agent breaks the contract: {row:#}"
    );
    a
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or("<not a string>").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn describe_pids(pids: &[i32]) -> String {
    pids.iter()
        .map(|&p| format!("{p}: {}", cmdline(p).join(" ")))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------
// exec: a shell command, a failure, a patch, codex-rm, resume

#[test]
fn a_shell_command_turn_is_summarised_and_rendered() {
    let t = TestRoot::new("codex-shell");
    let c = Codex::new(
        &t,
        [
            Reply::shell("echo hello"),
            Reply::message("All done: hello"),
        ],
    );
    let id = c.exec(&t, &[], "run echo hello");
    let rec = c.wait_ended(&t, &id);
    let ctx = || c.context(&t, &id);
    assert_eq!(rec["exit_code"], 0, "{rec:#}\n{}", ctx());
    assert_eq!(t.status(&id), Status::Exited);
    c.server.assert_script_done();
    let turns = c.server.turns();
    assert!(
        turns[0].contains("run echo hello"),
        "the prompt never reached the model\n{}",
        ctx()
    );
    let output = turns[1]
        .tool_output("call_1")
        .expect("checked by the script");
    assert!(
        output.to_string().contains("hello"),
        "the command's output did not reach the model: {output}"
    );

    // The agent summary, in the record and in codex-ps --json.
    let a = agent(&t, &id);
    let thread = a["thread_id"].as_str().unwrap_or("");
    assert!(!thread.is_empty(), "no thread id: {a:#}\n{}", ctx());
    assert_eq!(a["turns"], 1, "{a:#}");
    assert_eq!(a["input_tokens"], 2 * USAGE.0, "{a:#}");
    assert_eq!(a["output_tokens"], 2 * USAGE.1, "{a:#}");
    assert_eq!(a["cached_input_tokens"], 0, "{a:#}");
    assert_eq!(a["last_message"], "All done: hello", "{a:#}");
    assert_eq!(a["state"], "done", "{a:#}");
    assert!(a["last_error"].is_null(), "{a:#}");
    assert_eq!(rec["agent"], a, "the record and codex-ps disagree");
    let log = t.read(&id, "stdout.log");
    let log_text = String::from_utf8_lossy(&log).into_owned();
    assert!(
        log_text.contains(&format!("\"thread_id\":\"{thread}\"")),
        "thread id {thread} is not codex's\n{log_text}"
    );

    // codex-tail renders it for people.
    let out = t.tool("codex-tail", &[&id]);
    out.expect_success();
    let text = out.stdout_str();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    out.check(text.contains("echo hello"), "the command is not shown")
        .check(
            lines.contains(&"hello"),
            "the command's output is not shown as a line of its own",
        )
        .check(text.contains("exit 0"), "the exit code is not shown")
        .check(text.contains("All done: hello"), "the message is not shown")
        .check(
            !text.contains("\"type\":\"thread.started\""),
            "raw JSON is shown",
        );

    // --raw: the JSONL as it is.
    let raw_all = t.tool("codex-tail", &["--raw", "-n", "all", &id]);
    raw_all.expect_success();
    raw_all.check(
        raw_all.stdout == log,
        "--raw -n all differs from stdout.log",
    );
    let raw = t.tool("codex-tail", &["--raw", &id]);
    raw.expect_success();
    let n = log_text.lines().count();
    let last10: String = log_text
        .lines()
        .skip(n.saturating_sub(10))
        .map(|l| format!("{l}\n"))
        .collect();
    raw.check(
        raw.stdout == last10.as_bytes(),
        "--raw differs from the last 10 lines of stdout.log",
    );

    // --json: the usual fields and the parsed event.
    let js = t.tool("codex-tail", &["--json", "-n", "all", &id]);
    js.expect_success();
    let objs: Vec<Value> = js
        .stdout_str()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| js.fail(&format!("{l:?}: {e}"))))
        .filter(|o: &Value| o["stream"] == "stdout")
        .collect();
    let raw_lines: Vec<&str> = log_text.lines().collect();
    js.check(
        objs.len() == raw_lines.len(),
        "not one stdout object per line of stdout.log",
    );
    for (o, l) in objs.iter().zip(&raw_lines) {
        let ev: Value = serde_json::from_str(l).unwrap();
        js.check(o["line"] == *l, &format!("line differs: {o}"))
            .check(o["id"] == id.as_str(), &format!("id missing: {o}"))
            .check(o["time"].is_string(), &format!("time missing: {o}"))
            .check(o["event"].is_object(), &format!("no event object: {o}"))
            .check(
                o["event"]["type"] == ev["type"],
                &format!("event type differs from {l}: {o}"),
            )
            .check(o["event"] == ev, &format!("event differs from {l}: {o}"));
    }
}

#[test]
fn a_failing_turn_exits_1_with_the_agent_failed() {
    let t = TestRoot::new("codex-fail");
    let c = Codex::new(&t, [Reply::fail("the model is on fire")]);
    let id = c.exec(&t, &[], "this will fail");
    let rec = c.wait_ended(&t, &id);
    assert_eq!(rec["exit_code"], 1, "{rec:#}\n{}", c.context(&t, &id));
    assert!(rec["signal"].is_null(), "{rec:#}");
    let row = ps_json(&t, &id);
    assert_eq!(row["status"], "exited", "{row:#}");
    assert_eq!(row["exit_code"], 1, "{row:#}");
    let a = agent(&t, &id);
    assert_eq!(a["state"], "failed", "{a:#}\n{}", c.context(&t, &id));
    let err = a["last_error"].as_str().unwrap_or("");
    assert!(
        !err.is_empty(),
        "no last_error: {a:#}\n{}",
        c.context(&t, &id)
    );
    assert!(
        err.contains("on fire"),
        "last_error does not carry the model's error: {a:#}\n{}",
        c.context(&t, &id)
    );
    // The table shows it failed (STATUS says `exited 1`: the word comes
    // from the agent's state).
    let table = t.tool("codex-ps", &["--no-trunc"]);
    table.expect_success();
    let text = table.stdout_str();
    let row = text.lines().find(|l| l.contains(&id));
    table.check(
        row.is_some_and(|r| r.contains("failed")),
        "the row of the session does not say failed",
    );
    // codex-tail shows the error too, rendered (a line of the raw JSON
    // holds the words as well).
    let tail = t.tool("codex-tail", &[&id]);
    let text = tail.stdout_str();
    tail.expect_success()
        .check(
            text.lines()
                .any(|l| l.starts_with("── turn failed: ") && l.contains("on fire")),
            "the failed turn is not rendered as `── turn failed: <error>`",
        )
        .check(
            !text.lines().any(|l| l.starts_with('{')),
            "raw JSON events are printed",
        );
}

#[test]
fn a_patch_turn_creates_the_file_and_tail_shows_it() {
    let t = TestRoot::new("codex-patch");
    let work = t.path().join("work");
    fs::create_dir(&work).unwrap();
    let c = Codex::new(
        &t,
        [
            Reply::add_file("notes/hello.txt", &["hi from the patch", "second line"]),
            Reply::message("Patched."),
        ],
    );
    // codex exec's sandbox is read-only unless told otherwise.
    let id = c.spawn(
        &t,
        &["-C", s(&work)],
        &[
            "exec",
            "add a file",
            "--skip-git-repo-check",
            "--sandbox",
            "workspace-write",
        ],
    );
    let rec = c.wait_ended(&t, &id);
    assert_eq!(rec["exit_code"], 0, "{rec:#}\n{}", c.context(&t, &id));
    c.server.assert_script_done();
    let file = work.join("notes/hello.txt");
    assert_eq!(
        fs::read_to_string(&file).unwrap_or_else(|e| panic!(
            "{}: {e}\n{}",
            file.display(),
            c.context(&t, &id)
        )),
        "hi from the patch\nsecond line\n"
    );
    let a = agent(&t, &id);
    assert_eq!(a["state"], "done", "{a:#}");
    assert_eq!(a["last_message"], "Patched.", "{a:#}");
    let tail = t.tool("codex-tail", &["-n", "all", &id]);
    tail.expect_success();
    let text = tail.stdout_str();
    tail.check(
        text.lines()
            .any(|l| l.contains("notes/hello.txt") && !l.contains('{')),
        "the file change (its path) is not shown readably",
    );
}

#[test]
fn codex_rm_force_stops_a_turn_in_flight_within_the_grace() {
    let t = TestRoot::new("codex-rm");
    let c = Codex::new(&t, [Reply::slow("too late")]);
    let id = c.exec(&t, &[], "take your time");
    if !eventually(CODEX_WAIT, || c.server.slow_open() == 1) {
        panic!("codex never got mid-turn\n{}", c.context(&t, &id));
    }
    let before = session_pids(&id);
    let codex_pid = int(&t.record(&id), "pid") as i32;
    assert!(
        before.contains(&codex_pid) && is_alive(codex_pid),
        "codex ({codex_pid}) is not running in the session: {before:?}\n{}",
        t.listing()
    );
    let grace = Duration::from_secs(2);
    let out = t.tool("codex-rm", &["-f", "--grace", "2s", &id]);
    out.expect_success();
    out.check(
        out.stdout_str() == format!("{id}\n"),
        "the id is not printed",
    )
    .check(
        out.elapsed < grace + Duration::from_secs(5),
        "codex-rm took longer than the grace period allows",
    );
    let left = session_pids(&id);
    assert!(
        left.is_empty(),
        "processes of {id} left after codex-rm -f:\n{}",
        describe_pids(&left)
    );
    assert!(!t.session_dir(&id).exists(), "{}", t.listing());
    // codex hung up on the server, which ends the response it held.
    assert!(
        eventually(WAIT, || c.server.slow_open() == 0),
        "the slow response is still open\n{}",
        c.server.describe()
    );
}

#[test]
fn exec_resume_continues_the_same_thread() {
    let t = TestRoot::new("codex-resume");
    let c = Codex::new(
        &t,
        [
            Reply::message("First answer."),
            Reply::message("Second answer."),
        ],
    );
    // The first runs in its own directory, with codex options; the
    // follow-up is spawned from another directory, without them.
    let work = t.path().join("work");
    fs::create_dir(&work).unwrap();
    let first = c.spawn(
        &t,
        &["-C", s(&work)],
        &[
            "exec",
            "-s",
            "read-only",
            "first question",
            "-c",
            "model_reasoning_effort=\"low\"",
            "--skip-git-repo-check",
        ],
    );
    let rec1 = c.wait_ended(&t, &first);
    assert_eq!(rec1["exit_code"], 0, "{rec1:#}\n{}", c.context(&t, &first));
    let a1 = agent(&t, &first);
    let thread = a1["thread_id"].as_str().unwrap_or("").to_string();
    assert!(!thread.is_empty(), "{a1:#}");

    let second = c.spawn(&t, &[], &["exec", "follow up", "--resume", &first]);
    assert_ne!(second, first);
    let rec2 = c.wait_ended(&t, &second);
    let argv = strs(&rec2["argv"]);
    assert_eq!(
        argv.get(1..),
        Some(
            &[
                "exec",
                "--json",
                "--sandbox=read-only",
                "--config=model_reasoning_effort=\"low\"",
                "--skip-git-repo-check",
                "resume",
                &thread,
                "-"
            ]
            .map(String::from)[..]
        ),
        "the follow-up takes over the first's options\n{rec2:#}"
    );
    assert_eq!(
        rec2["cwd"],
        s(&work),
        "it runs where the thread ran: {rec2:#}"
    );
    let row = ps_json(&t, &second);
    assert_eq!(row["continues"], first.as_str(), "{row:#}");
    assert!(ps_json(&t, &first)["continues"].is_null());
    let table = t.tool("codex-ps", &["--no-trunc", &second]);
    table.check(
        table.stdout_str().contains(&format!("after {first}")),
        "the table shows the chain",
    );
    assert_eq!(rec2["exit_code"], 0, "{rec2:#}\n{}", c.context(&t, &second));
    assert_eq!(rec2["prompt"], "follow up", "{rec2:#}");
    let a2 = agent(&t, &second);
    assert_eq!(a2["thread_id"], thread.as_str(), "{a2:#}");
    assert_eq!(a2["last_message"], "Second answer.", "{a2:#}");
    assert_eq!(a2["state"], "done", "{a2:#}");
    c.server.assert_script_done();
    // The model saw the first exchange again: the same conversation.
    let turns = c.server.turns();
    assert!(
        turns[1].contains("follow up") && turns[1].contains("First answer."),
        "the resumed turn does not carry the earlier conversation\n{}",
        c.server.describe()
    );
    // Resuming a session that has no thread is refused.
    let cmd = t.spawn_id(&["--", "true"]);
    t.wait_ended(&cmd, WAIT);
    let out = t.spawn(&["--codex-bin", s(&c.bin), "exec", "--resume", &cmd, "again"]);
    out.check(
        out.code() != Some(0) && out.stderr_str().contains(&cmd),
        "resuming a session without a thread must fail, naming it",
    );
}

// ---------------------------------------------------------------------
// repl: the interactive codex through codex-attach in tmux

/// How long tmux commands and screen changes may take.
const SCREEN_WAIT: Duration = Duration::from_secs(30);

/// Whether a screen line holds `text` (codex wraps and indents its lines).
fn shows(lines: &[&str], text: &str) -> bool {
    lines.iter().any(|l| l.contains(text))
}

#[test]
fn repl_attach_shows_the_answers_detach_keeps_it_and_rm_ends_it() {
    let t = TestRoot::new("codex-repl");
    let work = t.path().join("work");
    fs::create_dir(&work).unwrap();
    let c = Codex::new(
        &t,
        [
            Reply::message("Hi from the model server."),
            Reply::message("A second answer, to the second prompt."),
        ],
    );
    let id = c.spawn(&t, &["-C", s(&work)], &["repl", "say hi", "--no-daemon"]);
    let rec = t.record(&id);
    assert_eq!(rec["kind"], "repl", "{rec:#}");
    assert!(rec["tty"].as_bool().unwrap_or(false), "{rec:#}");
    assert!(
        rec["agent"].is_null(),
        "a repl has no agent summary: {rec:#}"
    );
    // The first turn runs while nobody is attached (the supervisor answers
    // codex's terminal queries).
    let ctx = || c.context(&t, &id);
    if !eventually(CODEX_WAIT, || c.server.turns().len() == 1) {
        panic!("the interactive codex never asked the model\n{}", ctx());
    }
    assert!(
        c.server.turns()[0].contains("say hi"),
        "the prompt did not reach the model\n{}",
        ctx()
    );

    let tmux = Tmux::shell(&t, (100, 30), "xterm-256color", SCREEN_WAIT);
    tmux.type_line(&format!(
        "codex-attach --root {} {id}; echo rc1=$?",
        s(t.root())
    ));
    tmux.wait_screen_or(
        "the codex screen with the first answer",
        |l| shows(l, "Hi from the model server.") && !l.iter().any(|l| l.starts_with(OUT.1)),
        ctx,
    );

    // A second prompt: typed, seen in codex's composer, then submitted.
    tmux.type_text("tell me more");
    tmux.wait_screen_or(
        "the second prompt in the composer",
        |l| shows(l, "tell me more"),
        ctx,
    );
    tmux.keys(&["Enter"]);
    tmux.wait_screen_or(
        "the second answer",
        |l| shows(l, "A second answer, to the second prompt."),
        ctx,
    );
    let turns = c.server.turns();
    assert_eq!(turns.len(), 2, "{}", c.server.describe());
    assert!(
        turns[1].contains("tell me more") && turns[1].contains("Hi from the model server."),
        "the second turn is not the same conversation\n{}",
        c.server.describe()
    );
    assert!(c.server.problems().is_empty(), "{}", c.server.describe());

    // Detach: codex-attach exits 0, the session keeps running.
    tmux.keys(&["C-\\"]);
    tmux.wait_screen_or(
        "rc1=0 after detaching",
        |l| l.iter().any(|l| l.ends_with("rc1=0")),
        ctx,
    );
    assert_eq!(t.status(&id), Status::Running, "{}", t.listing());
    let pid = int(&t.record(&id), "pid") as i32;
    assert!(is_alive(pid), "codex ({pid}) is gone after the detach");

    // codex-rm -f ends it, nothing of it left.
    let before = session_pids(&id);
    assert!(before.contains(&pid), "{before:?}");
    let out = t.tool("codex-rm", &["-f", &id]);
    out.expect_success();
    let left = session_pids(&id);
    assert!(
        left.is_empty(),
        "processes of {id} left after codex-rm -f:\n{}",
        describe_pids(&left)
    );
    assert!(!t.session_dir(&id).exists(), "{}", t.listing());
}

// ---------------------------------------------------------------------
// A fleet's view: tails by rendered line, killed sessions, repls side by side

/// `codex-tail -n 3` of an exec session whose command printed 3,000 lines
/// prints 3 lines of the rendered view, the command's output cut to its
/// end with a count; --raw keeps everything.
#[test]
fn tail_n_counts_rendered_lines_and_cuts_long_output() {
    let t = TestRoot::new("codex-tail-n");
    let c = Codex::new(&t, [Reply::shell("seq 3000"), Reply::message("Counted.")]);
    let id = c.exec(&t, &[], "count to 3000");
    let rec = c.wait_ended(&t, &id);
    assert_eq!(rec["exit_code"], 0, "{rec:#}\n{}", c.context(&t, &id));
    let out = t.tool("codex-tail", &["-n", "3", &id]);
    out.expect_success();
    let text = out.stdout_str();
    let lines: Vec<&str> = text.lines().collect();
    out.check(lines.len() == 3, "-n 3 prints 3 lines");
    out.check(lines[1] == "codex> Counted.", "the answer is among them");
    let all = t.tool("codex-tail", &["-n", "all", &id]);
    let text = all.stdout_str();
    all.check(text.lines().count() < 40, "the rendered view is short")
        .check(text.contains("earlier lines of output"), "the cut says so")
        .check(text.contains("  3000"), "the output's end is shown");
    let raw = t.tool("codex-tail", &["--raw", "-n", "all", &id]);
    raw.check(
        raw.stdout_str().contains("2999\\n3000"),
        "--raw keeps it all",
    );
}

/// An exec session stopped by its --timeout ends its rendered view with a
/// line saying so, in codex-tail and in codex-tail -f.
#[test]
fn a_stopped_session_closes_its_rendered_view() {
    let t = TestRoot::new("codex-closing");
    let c = Codex::new(&t, [Reply::slow("never seen")]);
    let home = format!("CODEX_HOME={}", s(&c.home));
    let id = t
        .spawn_cmd()
        .env("HOME", t.path())
        .args([
            "--codex-bin",
            s(&c.bin),
            "-e",
            &home,
            "--timeout",
            "3s",
            "exec",
            "take your time",
            "--skip-git-repo-check",
        ])
        .run()
        .id();
    let follow = t
        .tool_cmd("codex-tail")
        .args(["-f", &id])
        .timeout(CODEX_WAIT)
        .run();
    let rec = t.record(&id);
    assert_eq!(rec["timed_out"], true, "{rec:#}\n{}", c.context(&t, &id));
    let last = |out: &Output| out.stdout_str().lines().last().unwrap_or("").to_string();
    follow.check(
        last(&follow).starts_with("── timed out"),
        "codex-tail -f ends with the closing line",
    );
    let out = t.tool("codex-tail", &["-n", "2", &id]);
    out.check(out.stdout_str().lines().count() == 2, "-n 2: two lines")
        .check(
            last(&out).starts_with("── timed out"),
            "the closing line is last",
        );
    let raw = t.tool("codex-tail", &["--raw", &id]);
    raw.check(
        !raw.stdout_str().contains("── timed out"),
        "--raw is the stream alone",
    );
}

/// Two repls side by side, the first with a prompt and an option, the
/// second with only codex's flags: each runs its own codex with no shared
/// server, so removing the first leaves the second answering through
/// codex-attach. A repl without a prompt shows where it runs, not codex's
/// path.
#[test]
fn two_repls_the_first_removed_the_second_still_answers() {
    let t = TestRoot::new("codex-2repl");
    let work = t.path().join("work");
    fs::create_dir(&work).unwrap();
    let c = Codex::new(
        &t,
        [
            Reply::message("Answer to the first repl."),
            Reply::message("Answer to the second repl."),
        ],
    );
    let first = c.spawn(&t, &["-C", s(&work)], &["repl", "hello first", "--search"]);
    let ctx1 = || c.context(&t, &first);
    if !eventually(CODEX_WAIT, || c.server.turns().len() == 1) {
        panic!("the first repl never asked the model\n{}", ctx1());
    }
    let second = c.spawn(&t, &["-C", s(&work)], &["repl", "--no-daemon"]);
    let rec = t.record(&second);
    let argv = strs(&rec["argv"]);
    assert_eq!(
        argv[1..],
        ["--no-daemon"],
        "no prompt, the flag once: {rec:#}"
    );
    assert!(rec["prompt"].is_null(), "{rec:#}");
    let argv1 = strs(&t.record(&first)["argv"]);
    assert_eq!(argv1[1..], ["--search", "--no-daemon", "hello first"]);
    let table = t.tool("codex-ps", &["--no-trunc", &second]);
    table.check(
        table
            .stdout_str()
            .contains(&format!("interactive, in {}", s(&work))),
        "PROMPT says where it runs",
    );

    // The first goes, with everything it started.
    t.tool("codex-rm", &["-f", &first]).expect_success();
    let second_pid = int(&t.record(&second), "pid") as i32;
    assert!(
        is_alive(second_pid),
        "the second repl's codex died with the first"
    );

    let ctx = || c.context(&t, &second);
    let tmux = Tmux::shell(&t, (100, 30), "xterm-256color", SCREEN_WAIT);
    tmux.type_line(&format!("codex-attach --root {} {second}", s(t.root())));
    tmux.wait_screen_or(
        "the second repl's composer",
        |l| !l.iter().any(|l| l.starts_with(OUT.1)) && l.iter().any(|l| !l.trim().is_empty()),
        ctx,
    );
    tmux.type_text("hello second");
    tmux.wait_screen_or(
        "the prompt in the composer",
        |l| shows(l, "hello second"),
        ctx,
    );
    tmux.keys(&["Enter"]);
    tmux.wait_screen_or(
        "the second repl's answer",
        |l| shows(l, "Answer to the second repl."),
        ctx,
    );
    tmux.keys(&["C-\\"]);
    t.tool("codex-rm", &["-f", &second]).expect_success();
}

/// The pane's modes, as tmux sees them.
const PANE_MODES: &str = "cursor-keys=#{keypad_cursor_flag} keypad=#{keypad_flag} \
alt=#{alternate_on} mouse=#{mouse_any_flag} cursor=#{cursor_flag} wrap=#{wrap_flag} \
origin=#{origin_flag} region=#{scroll_region_upper}-#{scroll_region_lower}";

#[test]
fn repl_detached_by_a_kitty_key_leaves_the_terminal_as_it_was() {
    let t = TestRoot::new("codex-restore");
    let work = t.path().join("work");
    fs::create_dir(&work).unwrap();
    let c = Codex::new(&t, [Reply::message("Hi from the model server.")]);
    let id = c.spawn(&t, &["-C", s(&work)], &["repl", "say hi", "--no-daemon"]);
    let ctx = || c.context(&t, &id);
    if !eventually(CODEX_WAIT, || c.server.turns().len() == 1) {
        panic!("the interactive codex never asked the model\n{}", ctx());
    }
    let tmux = Tmux::shell(&t, (100, 30), "xterm-256color", SCREEN_WAIT);
    let modes = || {
        tmux.ok(&["display-message", "-p", "-t", Tmux::SESSION, PANE_MODES])
            .stdout_str()
            .trim()
            .to_string()
    };
    let stty = || {
        let tty = tmux.var("pane_tty");
        t.command("stty")
            .args(["-a", "-F", &tty])
            .run()
            .stdout_str()
    };
    tmux.type_line("echo before-attach");
    tmux.wait_line("before-attach");
    let (modes0, stty0, screen0) = (modes(), stty(), tmux.screen());
    let bytes = t.path().join("pane.bytes");
    tmux.ok(&[
        "pipe-pane",
        "-o",
        "-t",
        Tmux::SESSION,
        &format!("cat >> {}", s(&bytes)),
    ]);
    tmux.type_line(&format!(
        "codex-attach --root {} {id}; echo rc1=$?",
        s(t.root())
    ));
    tmux.wait_screen_or(
        "the codex screen with the answer",
        |l| shows(l, "Hi from the model server.") && !l.iter().any(|l| l.starts_with(OUT.1)),
        ctx,
    );
    let during = modes();
    // ctrl-\ as a terminal speaking the kitty keyboard protocol sends it.
    tmux.ok(&[
        "send-keys",
        "-t",
        Tmux::SESSION,
        "-H",
        "1b",
        "5b",
        "39",
        "32",
        "3b",
        "35",
        "75",
    ]);
    let screen1 = tmux.wait_screen_or(
        "rc1=0 after detaching",
        |l| {
            let at = l.iter().position(|l| l.ends_with("rc1=0"));
            at.is_some_and(|i| l[i + 1..].iter().any(|l| l.starts_with(OUT.1)))
        },
        ctx,
    );
    let (modes1, stty1) = (modes(), stty());
    eprintln!(
        "before attach: {modes0}\n{}while attached: {during}\nafter detach: {modes1}\n{}",
        screen_dump(&screen0),
        screen_dump(&screen1)
    );
    assert_eq!(modes1, modes0, "the pane's modes were not restored");
    assert_eq!(stty1, stty0, "the terminal settings were not restored");
    // codex's TUI runs in the alternate screen: after it, the main screen
    // as the attach left it (what codex wrote before switching), the
    // notice on a line of its own below all of it, then the prompt.
    let lines: Vec<&str> = screen1.lines().collect();
    let notice = lines.iter().position(|l| l.starts_with("[detached from"));
    let last_text = lines
        .iter()
        .rposition(|l| !l.trim().is_empty() && !l.starts_with(OUT.1) && !l.contains("rc1=0"));
    assert!(
        notice.is_some() && notice == last_text,
        "the notice should be on its own line below the screen's text\n{}",
        screen_dump(&screen1)
    );
    // Restored: the kitty stack popped past codex-attach's own entry,
    // focus events and bracketed paste off.
    let written = String::from_utf8_lossy(&fs::read(&bytes).unwrap_or_default()).into_owned();
    let pushed = written.find("\x1b[>0u");
    let popped = written.rfind("\x1b[<");
    assert!(
        pushed.is_some() && popped > pushed,
        "no kitty push and pop written: {written:?}"
    );
    let tail = &written[popped.unwrap_or(0)..];
    assert!(
        tail.contains("\x1b[?1004l") && tail.contains("\x1b[?2004l"),
        "focus events and bracketed paste not turned off: {tail:?}"
    );
    // Nothing was typed into codex by the attach: still one turn, and the
    // session runs on.
    assert_eq!(c.server.turns().len(), 1, "{}", c.server.describe());
    assert_eq!(t.status(&id), Status::Running, "{}", t.listing());
    t.tool("codex-rm", &["-f", &id]).expect_success();
}

//! Live states of interactive agents (issue 18): what a program announces
//! on its terminal (`OSC 7501 ; state=…`, `OSC 9`, `OSC 777`) lands in the
//! record's agent summary, codex-ps shows it and filters on it; the real
//! codex 0.169 repl against the scripted model server goes idle, working,
//! done; the `OSC 7501 ; ?` query is answered while nobody is attached.

use std::fs;
use std::time::Duration;

use serde_json::Value;

use crate::support::model::*;
use crate::support::*;

/// How long a state may take to reach the record.
const STATE_WAIT: Duration = Duration::from_secs(15);
/// How long the real codex may take.
const CODEX_WAIT: Duration = Duration::from_secs(60);

/// `codex-ps --json ID`: its one object.
fn row(t: &TestRoot, id: &str) -> Value {
    let out = t.tool("codex-ps", &["--json", id]);
    out.expect_success();
    serde_json::from_str(out.stdout_str().trim())
        .unwrap_or_else(|e| out.fail(&format!("not one JSON line: {e}")))
}

/// The agent state of `id` as codex-ps --json gives it.
fn state(t: &TestRoot, id: &str) -> String {
    row(t, id)["agent"]["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Waits until the agent of `id` is in `want`; its codex-ps --json row.
fn wait_state(t: &TestRoot, id: &str, want: &str, context: impl Fn() -> String) -> Value {
    if !eventually(STATE_WAIT, || state(t, id) == want) {
        panic!(
            "{id} never reached agent state {want:?}: {:#}\n{}",
            row(t, id),
            context()
        );
    }
    row(t, id)
}

/// The PROMPT cell of `id` in the table (not a terminal: never cut).
fn prompt_cell(t: &TestRoot, id: &str) -> String {
    let out = t.tool("codex-ps", &[id]);
    out.expect_success();
    let text = out.stdout_str();
    let header = text.lines().next().unwrap_or("");
    let at = header
        .find("PROMPT")
        .unwrap_or_else(|| out.fail("no PROMPT"));
    text.lines()
        .nth(1)
        .map(|l| l[at..].to_string())
        .unwrap_or_default()
}

/// Ids listed by `codex-ps -q ARGS`.
fn ids(t: &TestRoot, args: &[&str]) -> Vec<String> {
    let out = t.tool("codex-ps", &[&["-q"], args].concat());
    out.expect_success();
    out.stdout_str().lines().map(String::from).collect()
}

/// A shell script that writes each of `steps` (printf formats) to its
/// terminal, waiting before each one after the first for the file
/// `gate-N` in the test's directory.
fn stepper(t: &TestRoot, steps: &[&str]) -> std::path::PathBuf {
    let mut body = String::from("#!/bin/sh\n");
    for (n, step) in steps.iter().enumerate() {
        if n > 0 {
            body.push_str(&format!(
                "while [ ! -e {}/gate-{n} ]; do sleep 0.05; done\n",
                sh_quote(s(t.path()))
            ));
        }
        body.push_str(&format!("printf '{step}'\n"));
    }
    body.push_str("sleep 0.3\n");
    t.script("stepper.sh", &body)
}

fn open_gate(t: &TestRoot, n: usize) {
    fs::write(t.path().join(format!("gate-{n}")), "").unwrap();
}

#[test]
fn a_program_reports_every_state_and_codex_ps_shows_and_filters_it() {
    let t = TestRoot::new("states");
    // "Allow rm -rf build?" in base64.
    let script = stepper(
        &t,
        &[
            "\\033]7501;state=working:app=demo\\033\\\\",
            "\\033]7501;state=blocked:kind=permission:msg=QWxsb3cgcm0gLXJmIGJ1aWxkPw==\\033\\\\",
            "\\033]7501;state=idle:app=demo\\007",
            "\\033]7501;state=error\\033\\\\",
            "\\033]7501;state=done\\033\\\\",
        ],
    );
    let id = t.spawn_id(&["-t", "--", s(&script)]);
    let cmd = t.spawn_id(&["--", "sleep", "30"]);
    let ctx = || t.listing();

    let r = wait_state(&t, &id, "working", ctx);
    assert_eq!(r["agent"]["app"], "demo", "{r:#}");
    assert!(r["agent"]["state_since"].is_string(), "{r:#}");
    assert_eq!(prompt_cell(&t, &id), format!("working: {}", s(&script)));
    assert!(
        row(&t, &cmd)["agent"].is_null(),
        "a command that says nothing has no agent"
    );

    open_gate(&t, 1);
    let r = wait_state(&t, &id, "blocked", ctx);
    assert_eq!(r["agent"]["blocked_on"], "permission", "{r:#}");
    assert_eq!(
        r["agent"]["blocked_message"], "Allow rm -rf build?",
        "{r:#}"
    );
    assert_eq!(prompt_cell(&t, &id), "needs input: Allow rm -rf build?");
    assert_eq!(ids(&t, &["-f", "state=blocked"]), vec![id.clone()]);
    assert!(ids(&t, &["-f", "state=working"]).is_empty());

    open_gate(&t, 2);
    let r = wait_state(&t, &id, "idle", ctx);
    assert!(r["agent"]["blocked_message"].is_null(), "{r:#}");
    assert_eq!(
        ids(&t, &["-f", "state=idle", "-f", "kind=cmd"]),
        vec![id.clone()]
    );

    open_gate(&t, 3);
    wait_state(&t, &id, "failed", ctx);
    assert_eq!(ids(&t, &["-f", "state=error"]), vec![id.clone()]);

    open_gate(&t, 4);
    wait_state(&t, &id, "done", ctx);
    let rec = t.wait_ended(&id, STATE_WAIT);
    assert_eq!(rec["agent"]["state"], "done", "{rec:#}");
    t.tool("codex-rm", &["-f", &cmd]).expect_success();
}

#[test]
fn notifications_block_until_someone_types_and_the_status_query_is_answered() {
    let t = TestRoot::new("notify");
    let answer = t.path().join("answer");
    // OSC 9 (a notification), then OSC 777 after input; the program reads
    // what the terminal answers to its status query.
    let script = t.script(
        "notify.sh",
        &format!(
            "#!/bin/sh\nstty -icanon -echo min 1\n\
             printf '\\033]9;4;1;50\\007\\033]9;Waiting for your answer\\007'\n\
             head -c 1 >/dev/null\n\
             printf '\\033]777;notify;Agent;Pick a branch\\033\\\\'\n\
             printf '\\033]7501;?\\033\\\\'\n\
             head -c 16 > {}\nsleep 30\n",
            sh_quote(s(&answer))
        ),
    );
    let id = t.spawn_id(&["-t", "--", s(&script)]);
    let ctx = || t.listing();
    let r = wait_state(&t, &id, "blocked", ctx);
    assert_eq!(
        r["agent"]["blocked_message"], "Waiting for your answer",
        "{r:#}"
    );
    assert_eq!(prompt_cell(&t, &id), "needs input: Waiting for your answer");

    // Typing ends a block known only from a notification.
    t.tool_cmd("codex-attach")
        .arg(&id)
        .stdin("y")
        .run()
        .expect_success();
    if !eventually(STATE_WAIT, || {
        row(&t, &id)["agent"]["blocked_message"] == "Agent: Pick a branch"
    }) {
        panic!("the OSC 777 notification never showed: {:#}", row(&t, &id));
    }
    assert!(
        wait_file(&answer, STATE_WAIT) && eventually(STATE_WAIT, || file_size(&answer) == 16),
        "the status query was not answered\n{}",
        ctx()
    );
    assert_eq!(fs::read(&answer).unwrap(), b"\x1b]7501;state=1\x1b\\");
    t.tool("codex-rm", &["-f", &id]).expect_success();
}

#[test]
fn the_codex_repl_goes_idle_working_done_and_the_hook_hears_each() {
    let t = TestRoot::new("codex-states");
    let work = t.path().join("work");
    fs::create_dir(&work).unwrap();
    let server = ModelServer::start([Reply::message("Hello from the scripted model.")]);
    let home = codex_home(t.path(), &server, "");
    let heard = t.path().join("heard");
    let hook = format!("echo \"$CODEX_AGENT_STATE\" >> {}", sh_quote(s(&heard)));
    let env = format!("CODEX_HOME={}", s(&home));
    let id = t
        .spawn_cmd()
        .env("HOME", t.path())
        .args([
            "--codex-bin",
            s(&codex_bin()),
            "-e",
            &env,
            "--timeout",
            "180s",
            "-C",
            s(&work),
            "--on-state",
            &hook,
            "repl",
        ])
        .run()
        .id();
    let ctx = || {
        format!(
            "{}\n--- stdout.log ---\n{}\n{}",
            t.listing(),
            String::from_utf8_lossy(&t.read(&id, "stdout.log")).escape_debug(),
            server.describe()
        )
    };
    // Before the first prompt: idle.
    if !eventually(CODEX_WAIT, || state(&t, &id) == "idle") {
        panic!("the repl never went idle\n{}", ctx());
    }
    assert_eq!(row(&t, &id)["agent"]["app"], "codex");
    assert_eq!(
        prompt_cell(&t, &id),
        format!("idle: interactive, in {}", s(&work))
    );
    assert_eq!(ids(&t, &["-f", "state=idle"]), vec![id.clone()]);

    // A prompt typed through codex-attach: a turn, then done.
    let attach = |bytes: &str| {
        t.tool_cmd("codex-attach")
            .arg(&id)
            .stdin(bytes)
            .run()
            .expect_success();
    };
    attach("say hi");
    std::thread::sleep(Duration::from_millis(500));
    attach("\r");
    if !eventually(CODEX_WAIT, || state(&t, &id) == "done") {
        panic!("the repl's turn never ended done\n{}", ctx());
    }
    assert_eq!(server.turns().len(), 1, "{}", server.describe());
    // codex wrote the sequences as the README says.
    let log = t.read(&id, "stdout.log");
    for state in ["idle", "working", "done"] {
        let seq = format!("\x1b]7501;state={state}:app=codex\x1b\\");
        assert!(
            log.windows(seq.len()).any(|w| w == seq.as_bytes()),
            "no {seq:?} in stdout.log\n{}",
            ctx()
        );
    }
    // The on-state hook heard every change, in order.
    let want = "idle\nworking\ndone\n";
    if !eventually(STATE_WAIT, || file_text(&heard) == want) {
        panic!(
            "the hook heard {:?}, expected {want:?}\n{}",
            file_text(&heard),
            file_text(&t.session_dir(&id).join("hooks.log"))
        );
    }
    t.tool("codex-rm", &["-f", &id]).expect_success();
}

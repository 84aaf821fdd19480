//! Issue 14, codex-tail: one bad selector among several does not stop
//! the others; `-f --until T` ends once T has passed; a time codex-tail
//! prints selects that same line when given back.

use std::time::{Duration, Instant};

use serde_json::Value;
use shared::Timestamp;

use crate::support::*;

#[test]
fn an_unknown_selector_among_several_is_reported_and_the_rest_printed() {
    let t = TestRoot::new("tail-unknown");
    let a = t.spawn_id(&["-n", "alpha", "--", "echo", "from alpha"]);
    let b = t.spawn_id(&["-n", "beta", "--", "echo", "from beta"]);
    t.wait_ended(&a, WAIT);
    t.wait_ended(&b, WAIT);
    for follow in [false, true] {
        let mut args = vec!["alpha", "no-such-session", "beta"];
        if follow {
            args.insert(0, "-f");
        }
        let out = t.tool("codex-tail", &args);
        let text = out.stdout_str();
        out.check(
            text.contains("alpha | from alpha") && text.contains("beta | from beta"),
            "the sessions that exist should be printed",
        );
        out.check(
            out.stderr_str().contains("no-such-session"),
            "the unknown selector should be reported",
        );
        out.expect_code(if follow { 125 } else { 1 });
    }
    // Alone, it is still an error with nothing printed.
    let out = t.tool("codex-tail", &["no-such-session"]);
    out.expect_code(1);
    out.check(out.stdout_str().is_empty(), "nothing to print");
}

#[test]
fn follow_until_ends_once_the_time_has_passed() {
    let t = TestRoot::new("tail-until");
    let id = t.spawn_id(&["--", "sh", "-c", "echo early; exec sleep 300"]);
    assert!(eventually(WAIT, || !t.read(&id, "stdout.log").is_empty()));
    let until = Timestamp(Timestamp::now().0 + 1_000_000_000).to_rfc3339_millis();
    let started = Instant::now();
    let out = t
        .tool_cmd("codex-tail")
        .args(["-f", "--until", &until, &id])
        .timeout(Duration::from_secs(10))
        .run();
    out.expect_success();
    out.check(out.stdout_str() == "early\n", "the line before T");
    out.check(
        started.elapsed() < Duration::from_secs(4),
        "codex-tail -f --until should end soon after T",
    );
    t.tool("codex-rm", &["-f", "--grace", "1s", &id])
        .expect_success();
}

#[test]
fn a_printed_time_given_back_selects_its_line() {
    let t = TestRoot::new("tail-times");
    let id = t.spawn_id(&[
        "--",
        "sh",
        "-c",
        "echo one; sleep 0.2; echo two; sleep 0.2; echo three",
    ]);
    t.wait_ended(&id, WAIT);
    let out = t.tool("codex-tail", &["--json", "-n", "all", &id]);
    out.expect_success();
    let rows: Vec<Value> = out
        .stdout_str()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3, "{}", out.stdout_str());
    for row in &rows {
        let time = row["time"].as_str().unwrap();
        let out = t.tool("codex-tail", &["--since", time, "--until", time, &id]);
        out.expect_success();
        out.check(
            out.stdout_str() == format!("{}\n", row["line"].as_str().unwrap()),
            &format!("--since {time} --until {time} should select its line"),
        );
        // The same with the time -t prints.
        let out = t.tool("codex-tail", &["-t", "--until", time, "-n", "1", &id]);
        out.check(
            out.stdout_str().starts_with(time),
            &format!("--until {time} should end at its line"),
        );
    }
}

#[test]
fn bytes_logged_mean_the_same_while_running_and_after_rotations() {
    let t = TestRoot::new("tail-bytes");
    let gate = t.path().join("gate");
    let script = format!(
        "i=0; while [ $i -lt 50 ]; do printf '%099d\\n' $i; i=$((i+1)); done; \
         while [ ! -e {} ]; do sleep 0.02; done",
        sh_quote(s(&gate))
    );
    // 5,000 bytes through 1,000-byte logs: four rotations.
    let id = t.spawn_id(&["--max-log-size", "1000", "--", "sh", "-c", &script]);
    let ps = || -> Value {
        let out = t.tool("codex-ps", &["--json", &id]);
        out.expect_success();
        serde_json::from_str(out.stdout_str().trim()).unwrap()
    };
    let running = eventually(Duration::from_secs(5), || ps()["stdout_bytes"] == 5000);
    let row = ps();
    assert!(
        running && row["status"] == "running",
        "while running, stdout_bytes should count every byte logged: {row:#}"
    );
    std::fs::write(&gate, "").unwrap();
    t.wait_ended(&id, WAIT);
    let row = ps();
    assert_eq!(row["stdout_bytes"], 5000, "after the end: {row:#}");
}

//! Exec sessions for people: codex's JSONL events rendered as readable
//! lines (`codex> …` messages, `$ command` with its output and exit code,
//! file changes, reasoning, errors, turn summaries with tokens). Lines that
//! are not JSON, and events we do not know, are printed as they are.

use serde_json::Value;

/// How many of a command's last output lines the rendered view shows.
pub const OUTPUT_LINES: usize = 5;

/// The line that closes the rendered view of a session that did not end by
/// itself: stopped by its `--timeout`, killed by a signal, or ended with
/// the status of one (codex exits 128+N when signal N stops it).
pub fn closing(record: &crate::Record) -> Option<String> {
    let signal = record.signal.clone().or_else(|| {
        let code = record.exit_code?;
        let signo = code.checked_sub(128).filter(|n| (1..=64).contains(n))?;
        let name = nix::sys::signal::Signal::try_from(signo).ok()?.as_str();
        Some(format!("{name} (exit {code})"))
    });
    match (record.timed_out, signal) {
        (true, Some(sig)) => Some(format!("── timed out, stopped by {sig}")),
        (true, None) => Some("── timed out".to_string()),
        (false, Some(sig)) => Some(format!("── stopped by {sig}")),
        (false, None) => None,
    }
}
/// How one line of an exec session's stdout reads for people: `None` to
/// print it as it is, else the lines to print (possibly none).
pub fn render(line: &[u8]) -> Option<Vec<String>> {
    let event: Value = serde_json::from_slice(line).ok()?;
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_string();
    let kind = event.get("type")?.as_str()?;
    Some(match kind {
        "thread.started" => vec![format!("── thread {}", text(&event, "thread_id"))],
        "turn.started" => vec!["── turn started".to_string()],
        "turn.completed" => {
            let usage = event.get("usage").unwrap_or(&Value::Null);
            let n = |k: &str| usage.get(k).and_then(Value::as_u64).unwrap_or(0);
            vec![format!(
                "── turn done · {} tokens in ({} cached) · {} out",
                n("input_tokens"),
                n("cached_input_tokens"),
                n("output_tokens")
            )]
        }
        "turn.failed" => {
            let error = event.get("error").unwrap_or(&Value::Null);
            vec![format!("── turn failed: {}", text(error, "message"))]
        }
        "error" => vec![format!("error: {}", text(&event, "message"))],
        "item.started" | "item.updated" | "item.completed" => {
            item(kind, event.get("item").unwrap_or(&Value::Null))?
        }
        _ => return None,
    })
}

fn item(phase: &str, item: &Value) -> Option<Vec<String>> {
    let text = |key: &str| {
        item.get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let done = phase == "item.completed";
    Some(match item.get("type")?.as_str()? {
        "agent_message" if done => prefixed("codex> ", "       ", &text("text")),
        "reasoning" if done => prefixed("thinking: ", "          ", &text("text")),
        "command_execution" if phase == "item.started" => vec![format!("$ {}", text("command"))],
        "command_execution" if done => {
            let output = text("aggregated_output");
            let all: Vec<&str> = output.lines().collect();
            let shown = all.len().min(OUTPUT_LINES);
            let mut lines = Vec::with_capacity(shown + 2);
            if all.len() > shown {
                lines.push(format!(
                    "  … {} earlier lines of output (--raw shows them)",
                    all.len() - shown
                ));
            }
            lines.extend(all[all.len() - shown..].iter().map(|l| format!("  {l}")));
            match item.get("exit_code").and_then(Value::as_i64) {
                Some(code) => lines.push(format!("  → exit {code}")),
                None => lines.push(format!("  → {}", text("status"))),
            }
            lines
        }
        "file_change" if done => item
            .get("changes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| {
                let path = c.get("path").and_then(Value::as_str).unwrap_or("?");
                let kind = c.get("kind").and_then(Value::as_str).unwrap_or("update");
                let mark = match kind {
                    "add" => '+',
                    "delete" => '-',
                    _ => '~',
                };
                format!("{mark} {path} ({kind})")
            })
            .collect(),
        "todo_list" => {
            let items: Vec<String> = item
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|t| {
                    let mark = if t.get("completed").and_then(Value::as_bool) == Some(true) {
                        "x"
                    } else {
                        " "
                    };
                    format!(
                        "[{mark}] {}",
                        t.get("text").and_then(Value::as_str).unwrap_or("")
                    )
                })
                .collect();
            if done || phase == "item.started" {
                vec![format!("todo: {}", items.join("  "))]
            } else {
                Vec::new()
            }
        }
        "error" => vec![format!("error: {}", text("message"))],
        // Other phases of known items add nothing readable.
        "agent_message" | "reasoning" | "command_execution" | "file_change" => Vec::new(),
        _ => return None,
    })
}

/// `text`'s lines, the first after `first`, the rest after `rest`.
fn prefixed(first: &str, rest: &str, text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| format!("{}{l}", if i == 0 { first } else { rest }))
        .collect();
    if lines.is_empty() {
        lines.push(first.trim_end().to_string());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(line: &str) -> Option<Vec<String>> {
        render(line.as_bytes())
    }

    #[test]
    fn the_closing_line_says_how_a_session_was_stopped() {
        let mut r = crate::Record {
            exit_code: Some(0),
            ..Default::default()
        };
        assert_eq!(closing(&r), None, "a session that ended by itself");
        r.exit_code = Some(3);
        assert_eq!(closing(&r), None);
        r.exit_code = Some(143);
        assert_eq!(closing(&r).unwrap(), "── stopped by SIGTERM (exit 143)");
        r.exit_code = Some(128 + 99);
        assert_eq!(closing(&r), None, "no signal 99");
        r.signal = Some("SIGKILL".into());
        assert_eq!(closing(&r).unwrap(), "── stopped by SIGKILL");
        r.timed_out = true;
        assert_eq!(closing(&r).unwrap(), "── timed out, stopped by SIGKILL");
        r.signal = None;
        r.exit_code = Some(0);
        assert_eq!(closing(&r).unwrap(), "── timed out");
    }

    #[test]
    fn renders_a_turn() {
        assert_eq!(
            r(r#"{"type":"thread.started","thread_id":"t1"}"#).unwrap(),
            ["── thread t1"]
        );
        assert_eq!(
            r(r#"{"type":"item.started","item":{"type":"command_execution","command":"echo hi"}}"#)
                .unwrap(),
            ["$ echo hi"]
        );
        assert_eq!(
            r(r#"{"type":"item.completed","item":{"type":"command_execution","command":"echo hi","aggregated_output":"hi\n","exit_code":0}}"#).unwrap(),
            ["  hi", "  → exit 0"]
        );
        assert_eq!(
            r(r#"{"type":"item.completed","item":{"type":"agent_message","text":"Done.\nBye."}}"#)
                .unwrap(),
            ["codex> Done.", "       Bye."]
        );
        assert_eq!(
            r(r#"{"type":"item.completed","item":{"type":"file_change","changes":[{"path":"a.txt","kind":"add"}]}}"#).unwrap(),
            ["+ a.txt (add)"]
        );
        assert_eq!(
            r(r#"{"type":"turn.completed","usage":{"input_tokens":20,"cached_input_tokens":5,"output_tokens":10}}"#).unwrap(),
            ["── turn done · 20 tokens in (5 cached) · 10 out"]
        );
        assert_eq!(
            r(r#"{"type":"turn.failed","error":{"message":"boom"}}"#).unwrap(),
            ["── turn failed: boom"]
        );
    }

    #[test]
    fn renders_the_rest_of_the_events() {
        assert_eq!(
            r(r#"{"type":"turn.started"}"#).unwrap(),
            ["── turn started"]
        );
        assert_eq!(
            r(r#"{"type":"error","message":"stream lost"}"#).unwrap(),
            ["error: stream lost"]
        );
        assert_eq!(
            r(r#"{"type":"item.completed","item":{"type":"error","message":"bad"}}"#).unwrap(),
            ["error: bad"]
        );
        assert_eq!(
            r(r#"{"type":"item.completed","item":{"type":"reasoning","text":"Hmm.\nYes."}}"#)
                .unwrap(),
            ["thinking: Hmm.", "          Yes."]
        );
        assert_eq!(
            r(r#"{"type":"item.completed","item":{"type":"agent_message","text":""}}"#).unwrap(),
            ["codex>"]
        );
        assert_eq!(
            r(r#"{"type":"item.completed","item":{"type":"file_change","changes":[{"path":"b","kind":"delete"},{"path":"c","kind":"update"},{"path":"d"}]}}"#).unwrap(),
            ["- b (delete)", "~ c (update)", "~ d (update)"]
        );
        assert_eq!(
            r(r#"{"type":"item.completed","item":{"type":"command_execution","command":"x","aggregated_output":"","status":"declined"}}"#).unwrap(),
            ["  → declined"]
        );
        let todo = |phase: &str| {
            r(&format!(
                r#"{{"type":"{phase}","item":{{"type":"todo_list","items":[{{"text":"a","completed":true}},{{"text":"b","completed":false}}]}}}}"#
            ))
            .unwrap()
        };
        assert_eq!(todo("item.started"), ["todo: [x] a  [ ] b"]);
        assert_eq!(todo("item.completed"), ["todo: [x] a  [ ] b"]);
        assert!(todo("item.updated").is_empty());
        // Other phases of known items say nothing.
        for (phase, kind) in [
            ("item.updated", "agent_message"),
            ("item.started", "agent_message"),
            ("item.updated", "reasoning"),
            ("item.started", "reasoning"),
            ("item.updated", "command_execution"),
            ("item.started", "file_change"),
        ] {
            let line = format!(
                r#"{{"type":"{phase}","item":{{"type":"{kind}","text":"x","changes":[{{"path":"p"}}]}}}}"#
            );
            assert_eq!(r(&line).unwrap(), Vec::<String>::new(), "{phase} {kind}");
        }
    }

    #[test]
    fn long_command_output_is_cut_to_its_end() {
        let output: String = (1..=3000).map(|i| format!("line {i}\n")).collect();
        let event = serde_json::json!({"type":"item.completed","item":{
            "type":"command_execution","command":"seq","aggregated_output":output,"exit_code":0}});
        let lines = render(event.to_string().as_bytes()).unwrap();
        assert_eq!(
            lines,
            [
                "  … 2995 earlier lines of output (--raw shows them)",
                "  line 2996",
                "  line 2997",
                "  line 2998",
                "  line 2999",
                "  line 3000",
                "  → exit 0"
            ]
        );
    }

    #[test]
    fn passes_through_what_it_does_not_know() {
        assert_eq!(r("plain text"), None);
        assert_eq!(r(r#"{"type":"brand.new"}"#), None);
        assert_eq!(
            r(r#"{"type":"item.completed","item":{"type":"hologram"}}"#),
            None
        );
        assert_eq!(
            r(r#"{"type":"item.updated","item":{"type":"agent_message","text":"x"}}"#).unwrap(),
            Vec::<String>::new()
        );
    }
}

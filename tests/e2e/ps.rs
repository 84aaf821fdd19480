//! End-to-end tests of codex-ps: the "Done when" items of issue 3 (every
//! state in the table and in `--json`, row numbers that other tools agree
//! with, `--json | jq`), then the options: filters, `--last`, selectors, an
//! empty root and a closed pipe.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::{json, Value};
use shared::Status;

use crate::support::*;

/// The columns of the table, in order.
const HEADER: [&str; 11] = [
    "#", "ID", "PID", "TYPE", "STATUS", "OUT", "ERR", "CREATED", "TIME", "TOKENS", "PROMPT",
];

/// The fields every `--json` object carries (issue 3).
const JSON_FIELDS: &str = "index id kind status exit_code signal timed_out pid supervisor_pid \
     created_at started_at ended_at cwd argv prompt tty stdin labels stdout_bytes stderr_bytes \
     dir error";

/// Runs `codex-ps --root ROOT ARGS...`.
fn ps(t: &TestRoot, args: &[&str]) -> Output {
    t.tool("codex-ps", args)
}

/// Every line of stdout parsed as one JSON object.
fn json_lines(out: &Output) -> Vec<Value> {
    out.stdout_str()
        .lines()
        .map(|l| match serde_json::from_str::<Value>(l) {
            Ok(v) if v.is_object() => v,
            Ok(_) => out.fail(&format!("not a JSON object: {l:?}")),
            Err(e) => out.fail(&format!("not a JSON line: {l:?}: {e}")),
        })
        .collect()
}

/// `codex-ps --json ARGS...`, which must exit 0 with nothing on stderr.
fn ps_json(t: &TestRoot, args: &[&str]) -> Vec<Value> {
    let out = ps(t, &[&["--json"], args].concat());
    out.expect_success()
        .check(out.stderr.is_empty(), "nothing expected on stderr");
    json_lines(&out)
}

/// Arguments of codex-ps, and the (index, id) rows they must list.
type Case<'a> = (&'a [&'a str], &'a [(i64, &'a str)]);

/// The (index, id) pairs of parsed `--json` lines, in order.
fn rows(values: &[Value]) -> Vec<(i64, String)> {
    values
        .iter()
        .map(|v| {
            let i = v["index"]
                .as_i64()
                .unwrap_or_else(|| panic!("index is not a number: {v}"));
            let id = v["id"]
                .as_str()
                .unwrap_or_else(|| panic!("id is not a string: {v}"));
            (i, id.to_string())
        })
        .collect()
}

/// `[(i, "id")]` as owned pairs, for comparisons.
fn want(pairs: &[(i64, &str)]) -> Vec<(i64, String)> {
    pairs.iter().map(|&(i, id)| (i, id.to_string())).collect()
}

/// Fails unless `codex-ps --json ARGS...` lists exactly the rows `expected`.
fn expect_rows(t: &TestRoot, args: &[&str], expected: &[(i64, &str)]) {
    assert_eq!(
        rows(&ps_json(t, args)),
        want(expected),
        "codex-ps --json {}",
        args.join(" ")
    );
}

/// The rows of a codex-ps table, each cell by column name. The header must
/// be exactly [`HEADER`], every cell must start at its header's column, and
/// a table on a pipe carries no colour.
fn parse_table(out: &Output) -> Vec<BTreeMap<&'static str, String>> {
    let text = out.stdout_str();
    if text.contains('\x1b') {
        out.fail("escape codes in a table written to a pipe");
    }
    let mut lines = text.lines();
    let header: Vec<char> = lines
        .next()
        .unwrap_or_else(|| out.fail("no header line"))
        .chars()
        .collect();
    let starts: Vec<usize> = (0..header.len())
        .filter(|&i| header[i] != ' ' && (i == 0 || header[i - 1] == ' '))
        .collect();
    let words: Vec<String> = header
        .iter()
        .collect::<String>()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if words != HEADER {
        out.fail(&format!("the header is {words:?}, expected {HEADER:?}"));
    }
    let mut table = Vec::new();
    for line in lines {
        let chars: Vec<char> = line.chars().collect();
        let mut row = BTreeMap::new();
        for (c, name) in HEADER.iter().enumerate() {
            let start = starts[c];
            let end = starts.get(c + 1).copied().unwrap_or(chars.len());
            if start > 0 && chars.get(start - 1).is_some_and(|&ch| ch != ' ') {
                out.fail(&format!("column {name} is not aligned in {line:?}"));
            }
            let cell: String = chars
                .get(start.min(chars.len())..end.min(chars.len()))
                .unwrap_or_default()
                .iter()
                .collect();
            row.insert(*name, cell.trim().to_string());
        }
        table.push(row);
    }
    table
}

/// Ends the orphaned command of lost session `id` by its process group
/// (see [`end_orphans`]), then waits until every member is gone.
fn end_orphans_of(id: &str, pgid: i32) {
    let members = end_orphans(id, pgid);
    assert!(
        eventually(Duration::from_secs(5), || members
            .iter()
            .all(|&p| !is_alive(p))),
        "the orphans of {id} survived SIGKILL"
    );
}

/// The size of a file of session `id`, 0 when it does not exist.
fn size(t: &TestRoot, id: &str, file: &str) -> u64 {
    file_size(&t.session_dir(id).join(file))
}

/// Whether `s` reads as RFC 3339 UTC (`2025-04-27T19:08:47.123Z`, the
/// fraction optional) and parses as a timestamp.
fn is_rfc3339_utc(s: &str) -> bool {
    let shape = "0000-00-00T00:00:00".bytes();
    s.len() >= 20
        && s.bytes().zip(shape).all(|(c, want)| match want {
            b'0' => c.is_ascii_digit(),
            _ => c == want,
        })
        && s.ends_with('Z')
        && shared::Timestamp::parse_rfc3339(s).is_ok()
}

// ---------------------------------------------------------------------
// Every state, in the table and in --json.
// ---------------------------------------------------------------------

#[test]
fn every_state_shows_in_the_table_and_the_json() {
    let t = TestRoot::new("ps-states");
    let long = format!("echo {}; exit 0", "x".repeat(150));
    let exit0 = t.spawn_id(&["--", "sh", "-c", &long]);
    let exit3 = t.spawn_id(&[
        "-l",
        "team=a",
        "-l",
        "tier=2",
        "--",
        "sh",
        "-c",
        "echo out; echo error >&2; exit 3",
    ]);
    let killed = t.spawn_id(&["--", "sh", "-c", "kill -TERM $$"]);
    let timed = t.spawn_id(&["--timeout", "1s", "--", "sleep", "30"]);
    let failed = t.spawn_id(&["--", "sh", "-c", "echo never"]);
    let garbage = t.spawn_id(&["--", "true"]);
    let truncated = t.spawn_id(&["--", "true"]);
    let lost = t.spawn_id(&["--", "sleep", "300"]);
    let running = t.spawn_id(&["--", "sleep", "300"]);
    for id in [
        &exit0, &exit3, &killed, &timed, &failed, &garbage, &truncated,
    ] {
        t.wait_ended(id, WAIT);
    }

    // Failed: a record that still says "starting" with nobody holding the
    // lock (what a codex-spawn killed mid-start leaves).
    let mut rec = t.record(&failed);
    for key in [
        "pid",
        "pgid",
        "pid_start_time",
        "started_at",
        "ended_at",
        "exit_code",
    ] {
        rec[key] = Value::Null;
    }
    rec["state"] = json!("starting");
    t.write_record(&failed, &rec);
    // Corrupt: garbage, and a record cut in half.
    fs::write(t.session_dir(&garbage).join("session.json"), b"\0garbage{").unwrap();
    let whole = t.read(&truncated, "session.json");
    fs::write(
        t.session_dir(&truncated).join("session.json"),
        &whole[..whole.len() / 2],
    )
    .unwrap();
    let lost_rec = make_lost(&t, &lost);
    let running_rec = t.record(&running);
    for (id, st) in [
        (&failed, Status::Failed),
        (&garbage, Status::Corrupt),
        (&truncated, Status::Corrupt),
        (&running, Status::Running),
    ] {
        assert_eq!(t.status(id), st, "{id}\n{}", t.listing());
    }

    let expected: BTreeMap<&str, &str> = [
        (running.as_str(), "running"),
        (exit0.as_str(), "exited 0"),
        (exit3.as_str(), "exited 3"),
        (killed.as_str(), "killed SIGTERM"),
        (timed.as_str(), "timed out"),
        (lost.as_str(), "lost"),
        (garbage.as_str(), "corrupt"),
        (truncated.as_str(), "corrupt"),
        (failed.as_str(), "failed"),
    ]
    .into();
    let corrupt = [garbage.as_str(), truncated.as_str()];
    let check_warnings = |out: &Output| {
        out.expect_success();
        let err = out.stderr_str();
        for id in corrupt {
            out.check(
                err.lines().any(|l| l.contains("warning") && l.contains(id)),
                &format!("no warning on stderr naming the corrupt session {id}"),
            );
        }
        out.check(
            err.lines().all(|l| corrupt.iter().any(|id| l.contains(id))),
            "stderr holds more than the corrupt sessions' warnings",
        );
    };

    // The table, on a pipe: no colour, nothing cut.
    let out = ps(&t, &[]);
    check_warnings(&out);
    let table = parse_table(&out);
    let listed: Vec<&str> = table.iter().map(|r| r["ID"].as_str()).collect();
    out.check(table.len() == expected.len(), "one row per session");
    out.check(
        listed.iter().copied().collect::<BTreeSet<_>>() == expected.keys().copied().collect(),
        "the rows are not the sessions",
    );
    for (n, row) in table.iter().enumerate() {
        let id = row["ID"].as_str();
        out.check(
            row["#"] == n.to_string(),
            &format!("row {n} is numbered {}", row["#"]),
        );
        out.check(
            row["STATUS"] == expected[id],
            &format!(
                "{id}: STATUS {:?}, expected {:?}",
                row["STATUS"], expected[id]
            ),
        );
        if !corrupt.contains(&id) {
            let rec = t.record(id);
            out.check(row["TYPE"] == "cmd", &format!("{id}: TYPE"));
            let want_pid = rec["pid"].as_i64().map_or("-".into(), |p| p.to_string());
            out.check(row["PID"] == want_pid, &format!("{id}: PID"));
            let created = rec["created_at"].as_str().unwrap();
            out.check(
                row["CREATED"] == format!("{}Z", &created[..19]),
                &format!("{id}: CREATED is not {created} to the second"),
            );
            let argv: Vec<String> = rec["argv"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| sh_quote(a.as_str().unwrap()))
                .collect();
            out.check(
                row["PROMPT"] == argv.join(" "),
                &format!("{id}: PROMPT is not the whole command line"),
            );
        } else {
            out.check(
                is_rfc3339_utc(&row["CREATED"]),
                &format!("{id}: CREATED {:?}", row["CREATED"]),
            );
        }
    }
    let exit3_row = table.iter().find(|r| r["ID"] == exit3).unwrap();
    out.check(
        exit3_row["OUT"] == "4 B" && exit3_row["ERR"] == "6 B",
        "OUT/ERR of the exit-3 session are not `4 B` and `6 B`",
    );

    // The same, as JSON lines.
    let out = ps(&t, &["--json"]);
    check_warnings(&out);
    let values = json_lines(&out);
    let by_id: BTreeMap<String, &Value> = values
        .iter()
        .map(|v| (v["id"].as_str().unwrap().to_string(), v))
        .collect();
    out.check(
        rows(&values)
            == listed
                .iter()
                .enumerate()
                .map(|(i, id)| (i as i64, id.to_string()))
                .collect::<Vec<_>>(),
        "the JSON lines are not numbered 0.. in the table's order",
    );
    for v in &values {
        let id = v["id"].as_str().unwrap();
        let fail = |what: &str| out.fail(&format!("{id}: {what}\n{v:#}"));
        for key in JSON_FIELDS.split_whitespace() {
            if v.get(key).is_none() {
                fail(&format!("no field {key}"));
            }
        }
        let status = v["status"].as_str().unwrap_or_default();
        let want_status = expected[id].split(' ').next().unwrap();
        let want_status = match want_status {
            "killed" | "timed" => "exited",
            s => s,
        };
        if status != want_status {
            fail(&format!("status {status:?}, expected {want_status:?}"));
        }
        if !v["labels"].is_object() || !v["timed_out"].is_boolean() || !v["argv"].is_array() {
            fail("labels, timed_out or argv of the wrong type");
        }
        for (key, file) in [
            ("stdout_bytes", "stdout.log"),
            ("stderr_bytes", "stderr.log"),
        ] {
            if v[key].as_u64() != Some(size(&t, id, file)) {
                fail(&format!("{key} is not the size of {file}"));
            }
        }
        if corrupt.contains(&id) {
            if !v["error"].is_string() || !v["kind"].is_null() {
                fail("a corrupt session needs an error and no kind");
            }
            continue;
        }
        let rec = t.record(id);
        if v["kind"] != "cmd" || v["argv"] != rec["argv"] {
            fail("kind or argv differ from the record");
        }
        if !v["supervisor_pid"].is_i64() || v["supervisor_pid"] != rec["supervisor_pid"] {
            fail("supervisor_pid is not the record's, as a number");
        }
        if id != failed && (!v["pid"].is_i64() || v["pid"] != rec["pid"]) {
            fail("pid is not the record's, as a number");
        }
        for key in ["created_at", "started_at", "ended_at"] {
            if let Some(s) = v[key].as_str() {
                if !is_rfc3339_utc(s) {
                    fail(&format!("{key} is not RFC 3339 UTC"));
                }
            } else if key == "created_at" || !v[key].is_null() {
                fail(&format!("{key} is neither a string nor null"));
            }
        }
        let want_labels = if id == exit3 {
            json!({"team": "a", "tier": "2"})
        } else {
            json!({})
        };
        if v["labels"] != want_labels {
            fail(&format!("labels, expected {want_labels}"));
        }
        let (code, sig, timed_out) = match expected[id] {
            "exited 0" => (json!(0), Value::Null, false),
            "exited 3" => (json!(3), Value::Null, false),
            "killed SIGTERM" => (json!(143), json!("SIGTERM"), false),
            "timed out" => (json!(143), json!("SIGTERM"), true),
            _ => (Value::Null, Value::Null, false),
        };
        if v["exit_code"] != code || v["signal"] != sig || v["timed_out"] != timed_out {
            fail(&format!(
                "exit_code/signal/timed_out, expected {code}/{sig}/{timed_out}"
            ));
        }
        if status == "exited" && !v["error"].is_null() {
            fail("an exited session with an error");
        }
    }
    assert!(is_alive(int(&running_rec, "pid") as i32));
    assert_eq!(by_id[&lost]["pid"], lost_rec["pid"]);
    assert_eq!(by_id[&lost]["supervisor_pid"], lost_rec["supervisor_pid"]);
    assert_eq!(by_id[&exit3]["stdout_bytes"], 4);
    assert_eq!(by_id[&exit3]["stderr_bytes"], 6);

    end_orphans_of(&lost, int(&lost_rec, "pgid") as i32);
}

// ---------------------------------------------------------------------
// Row numbers, filters, --last and selectors.
// ---------------------------------------------------------------------

/// Five sessions, spawned oldest first, so that the newest-first list is
/// delta-1 (0), gamma-1 (1), beta-1 (2, running), alpha-2 (3), alpha-1 (4).
fn five_sessions(t: &TestRoot) {
    for args in [
        &["-n", "alpha-1", "-l", "team=a", "--", "true"][..],
        &["-n", "alpha-2", "-l", "team=a", "--", "sh", "-c", "exit 3"],
        &["-n", "beta-1", "-l", "team=b", "--", "sleep", "300"],
        &["-n", "gamma-1", "-l", "team=b", "--", "sh", "-c", "exit 3"],
        &["-n", "delta-1", "-l", "owner=me", "--", "true"],
    ] {
        t.spawn_id(args);
    }
    for id in ["alpha-1", "alpha-2", "gamma-1", "delta-1"] {
        t.wait_ended(id, WAIT);
    }
}

#[test]
fn rows_are_numbered_newest_first_and_keep_their_number_under_filters() {
    let t = TestRoot::new("ps-rows");
    five_sessions(&t);
    let all = want(&[
        (0, "delta-1"),
        (1, "gamma-1"),
        (2, "beta-1"),
        (3, "alpha-2"),
        (4, "alpha-1"),
    ]);
    assert_eq!(rows(&ps_json(&t, &[])), all, "{}", t.listing());
    let exited = want(&[
        (0, "delta-1"),
        (1, "gamma-1"),
        (3, "alpha-2"),
        (4, "alpha-1"),
    ]);
    assert_eq!(rows(&ps_json(&t, &["-f", "status=exited"])), exited);

    // The table keeps the numbers too.
    let out = ps(&t, &["-f", "status=exited"]);
    out.expect_success();
    let numbered: Vec<(String, String)> = parse_table(&out)
        .into_iter()
        .map(|r| (r["#"].clone(), r["ID"].clone()))
        .collect();
    let exp: Vec<(String, String)> = exited
        .iter()
        .map(|(i, id)| (i.to_string(), id.clone()))
        .collect();
    out.check(numbered == exp, "the table's # column under a filter");

    // -q: ids only, one a line, in the same order.
    let out = ps(&t, &["-q", "-f", "status=exited"]);
    out.expect_success();
    let ids: Vec<String> = exited.iter().map(|(_, id)| id.clone()).collect();
    out.check(
        out.stdout_str() == ids.join("\n") + "\n",
        "-q prints the ids, one a line",
    );

    // -n: the newest only, after filtering.
    assert_eq!(rows(&ps_json(&t, &["-n", "1"])), want(&[(0, "delta-1")]));
    let out = ps(&t, &["-n", "1"]);
    let table = parse_table(out.expect_success());
    out.check(
        table.len() == 1 && table[0]["#"] == "0" && table[0]["ID"] == "delta-1",
        "-n 1 shows the newest row alone",
    );
    assert_eq!(
        rows(&ps_json(&t, &["-n", "2", "-f", "exit=3"])),
        want(&[(1, "gamma-1"), (3, "alpha-2")])
    );
}

#[test]
fn filters_match_and_combine() {
    let t = TestRoot::new("ps-filters");
    five_sessions(&t);
    let cases: [Case; 10] = [
        (
            &["-f", "kind=cmd"],
            &[
                (0, "delta-1"),
                (1, "gamma-1"),
                (2, "beta-1"),
                (3, "alpha-2"),
                (4, "alpha-1"),
            ],
        ),
        (&["-f", "kind=exec"], &[]),
        (&["-f", "status=running"], &[(2, "beta-1")]),
        (&["-f", "label=team=a"], &[(3, "alpha-2"), (4, "alpha-1")]),
        (
            &["-f", "label=team"],
            &[
                (1, "gamma-1"),
                (2, "beta-1"),
                (3, "alpha-2"),
                (4, "alpha-1"),
            ],
        ),
        (&["-f", "label=owner=you"], &[]),
        (&["-f", "exit=3"], &[(1, "gamma-1"), (3, "alpha-2")]),
        (&["-f", "label=team=a", "-f", "exit=3"], &[(3, "alpha-2")]),
        (
            &["-f", "label=team", "-f", "status=exited", "-f", "exit=0"],
            &[(4, "alpha-1")],
        ),
        (&["-f", "label=team=b", "-f", "exit=0"], &[]),
    ];
    for (args, expected) in cases {
        expect_rows(&t, args, expected);
        let out = ps(&t, &[&["-q"], args].concat());
        out.expect_success();
        let ids: String = expected.iter().map(|(_, id)| format!("{id}\n")).collect();
        out.check(out.stdout_str() == ids, "-q with the same filters");
    }

    // A bad filter is a usage error naming the accepted keys.
    for bad in ["colour=red", "status=dead", "exit=x", "team"] {
        let out = ps(&t, &["-f", bad]);
        out.expect_code(2).expect_usage_error_naming(bad);
        let err = out.stderr_str();
        for key in ["status=", "kind=", "label=", "exit="] {
            out.check(err.contains(key), &format!("the error does not name {key}"));
        }
        out.check(out.stdout.is_empty(), "nothing on stdout");
    }
}

#[test]
fn selectors_pick_ids_prefixes_and_rows() {
    let t = TestRoot::new("ps-select");
    five_sessions(&t);
    let cases: [Case; 6] = [
        (&["gamma-1"], &[(1, "gamma-1")]),
        (&["bet"], &[(2, "beta-1")]),
        (&["3"], &[(3, "alpha-2")]),
        (&["alpha-1", "0"], &[(0, "delta-1"), (4, "alpha-1")]),
        (&["2", "beta-1", "b"], &[(2, "beta-1")]),
        (&["2", "4", "-f", "status=exited"], &[(4, "alpha-1")]),
    ];
    for (args, expected) in cases {
        expect_rows(&t, args, expected);
    }

    // An ambiguous prefix fails, naming the candidates.
    let out = ps(&t, &["--json", "alpha"]);
    out.expect_code(1);
    let err = out.stderr_str();
    out.check(
        err.starts_with("codex-ps: ") && err.contains("alpha-1") && err.contains("alpha-2"),
        "the error names both candidates",
    );
    out.check(out.stdout.is_empty(), "nothing listed on an error");
    // Unknown ids and rows fail too.
    for bad in ["zebra", "5"] {
        let out = ps(&t, &[bad]);
        out.expect_code(1).expect_one_error_line(bad);
        out.check(out.stdout.is_empty(), "nothing listed on an error");
    }
}

// ---------------------------------------------------------------------
// An empty or missing root; a closed pipe.
// ---------------------------------------------------------------------

#[test]
fn an_empty_or_missing_root_prints_the_header_alone() {
    let t = TestRoot::new("ps-empty");
    for state in ["missing", "empty"] {
        if state == "empty" {
            fs::create_dir(t.root()).unwrap();
            fs::set_permissions(t.root(), fs::Permissions::from_mode(0o700)).unwrap();
        }
        let out = ps(&t, &[]);
        out.expect_success()
            .check(out.stderr.is_empty(), "nothing on stderr");
        let text = out.stdout_str();
        out.check(
            text.lines().count() == 1 && text.ends_with('\n'),
            &format!("{state} root: the table is one line"),
        );
        out.check(
            text.split_whitespace().collect::<Vec<_>>() == HEADER,
            &format!("{state} root: the line is the header"),
        );
        for flag in ["--json", "-q"] {
            let out = ps(&t, &[flag]);
            out.expect_success().check(
                out.stdout.is_empty() && out.stderr.is_empty(),
                &format!("{state} root: {flag} prints nothing"),
            );
        }
    }
    assert!(t.root().is_dir(), "codex-ps must not remove the root");
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let t = TestRoot::new("ps-pipe");
    let id = t.spawn_id(&["--", "true"]);
    let rec = t.wait_ended(&id, WAIT);
    // 1,500 finished sessions: far more output than a pipe holds, so
    // codex-ps writes to a pipe whose reader has gone.
    for i in 0..1500 {
        let copy = format!("copy-{i:04}");
        let dir = t.session_dir(&copy);
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        let mut r = rec.clone();
        r["id"] = json!(copy);
        t.write_record(&copy, &r);
    }
    for args in ["", "--json", "-q"] {
        let d = t.path();
        let line = format!(
            "{} --root {} {args} 2> {}/err | head -1; echo ${{PIPESTATUS[0]}} > {}/rc",
            sh_quote(s(&bin("codex-ps"))),
            sh_quote(s(t.root())),
            sh_quote(s(d)),
            sh_quote(s(d)),
        );
        let out = t.command("bash").arg("-c").arg(&line).run();
        out.expect_success();
        let rc = fs::read_to_string(d.join("rc")).unwrap();
        let err = fs::read_to_string(d.join("err")).unwrap();
        out.check(
            rc.trim() == "0",
            &format!("codex-ps {args} | head -1: codex-ps exited {rc}"),
        );
        out.check(
            err.is_empty() && out.stderr.is_empty(),
            &format!("codex-ps {args} | head -1 wrote on stderr: {err}"),
        );
        let first = out.stdout_str();
        out.check(first.lines().count() == 1, "head -1 printed one line");
        match args {
            "" => out.check(
                first.split_whitespace().collect::<Vec<_>>() == HEADER,
                "the first line is the header",
            ),
            "--json" => out.check(
                serde_json::from_str::<Value>(&first).is_ok_and(|v| v["index"] == 0),
                "the first line is the JSON of row 0",
            ),
            _ => out.check(
                first.starts_with("copy-") || first == format!("{id}\n"),
                "an id",
            ),
        };
    }
}

// ---------------------------------------------------------------------
// Row numbers agree with codex-tail; the JSON goes through jq.
// ---------------------------------------------------------------------

#[test]
fn row_numbers_agree_with_codex_tail() {
    let t = TestRoot::new("ps-tail");
    for (name, code) in [("t-one", 3), ("t-two", 0), ("t-three", 3), ("t-four", 1)] {
        let script = format!("echo output of {name}; exit {code}");
        t.spawn_id(&["-n", name, "--", "sh", "-c", &script]);
        t.wait_ended(name, WAIT);
    }
    let tail = |sel: &str| t.tool("codex-tail", &[sel]);
    for filter in [
        &[][..],
        &["-f", "exit=3"],
        &["-f", "status=exited", "-n", "2"],
    ] {
        let listed = rows(&ps_json(&t, filter));
        assert!(!listed.is_empty());
        for (index, id) in listed {
            let out = tail(&index.to_string());
            out.expect_success().check(
                out.stdout_str() == format!("output of {id}\n"),
                &format!("codex-tail {index} does not print row {index} of codex-ps ({id})"),
            );
            // codex-ps itself takes the row number as a selector.
            let again = rows(&ps_json(&t, &[&index.to_string()]));
            assert_eq!(again, vec![(index, id.clone())]);
        }
    }
    assert_eq!(
        rows(&ps_json(&t, &["-f", "exit=3"])),
        want(&[(1, "t-three"), (3, "t-one")])
    );
}

#[test]
fn json_lines_go_through_jq() {
    let t = TestRoot::new("ps-jq");
    let a = t.spawn_id(&["-l", "team=a", "--", "sh", "-c", "exit 3"]);
    let b = t.spawn_id(&["--", "sleep", "300"]);
    t.wait_ended(&a, WAIT);
    let values = ps_json(&t, &[]);
    assert_eq!(rows(&values), want(&[(0, &b), (1, &a)]));
    if !need_program("jq", "`codex-ps --json | jq` as users run it") {
        return;
    }
    let ps_bin = sh_quote(s(&bin("codex-ps")));
    let root = sh_quote(s(t.root()));
    let out = t
        .command("bash")
        .arg("-c")
        .arg(format!("{ps_bin} --root {root} --json | jq -r .id"))
        .run();
    out.expect_success()
        .check(out.stdout_str() == format!("{b}\n{a}\n"), "jq -r .id");
    // Typed values: numbers as numbers, labels an object.
    let typed = "all(.[]; (.index|type) == \"number\" and (.pid|type) == \"number\" \
                 and (.supervisor_pid|type) == \"number\" and (.labels|type) == \"object\" \
                 and (.stdout_bytes|type) == \"number\" and (.timed_out|type) == \"boolean\")";
    let out = t
        .command("bash")
        .arg("-c")
        .arg(format!(
            "{ps_bin} --root {root} --json | jq -e -s {}",
            sh_quote(typed)
        ))
        .run();
    out.expect_success();
    let out = t
        .command("bash")
        .arg("-c")
        .arg(format!(
            "{ps_bin} --root {root} --json | jq -r 'select(.exit_code == 3) | .labels.team'"
        ))
        .run();
    out.expect_success()
        .check(out.stdout_str() == "a\n", "jq select on exit_code");
}

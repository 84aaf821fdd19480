//! A local model server for the real codex binary: an HTTP/1.1 server on
//! 127.0.0.1 (an ephemeral port, one thread per connection) that answers
//! `POST /v1/responses` with server-sent events, scripted per test by a
//! queue of [`Reply`]s, and records every request for assertions.
//!
//! Also: the CODEX_HOME a test gives codex (a `config.toml` pointing at the
//! server, no account, no retries) and the codex binary that
//! `scripts/test` installs into `<repo>/.cache/codex`.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The codex version `scripts/test` installs.
pub const CODEX_VERSION: &str = "0.169.0";
/// The model named in the test config.
pub const MODEL: &str = "gpt-5.5";
/// The usage every scripted response reports; codex sums it per turn.
pub const USAGE: (u64, u64) = (10, 5);
/// How long a [`Reply::Slow`] holds its response open at most.
pub const SLOW_FOR: Duration = Duration::from_secs(60);
/// The answer to codex's side requests (a thread's title...).
pub const SIDE_ANSWER: &str = "Scripted test session";
/// The step of every wait of the server (accept, reads, slow turns).
const STEP: Duration = Duration::from_millis(20);
/// Largest request accepted (codex's requests are a few hundred kB).
const MAX_REQUEST: usize = 64 << 20;

/// One scripted answer to one `POST /v1/responses`.
#[derive(Clone, Debug)]
pub enum Reply {
    /// An assistant message with this text.
    Message(String),
    /// A shell command, through the shell tool the request advertises
    /// (`exec_command`, else `shell`); the next request must carry its
    /// output.
    Shell(String),
    /// A patch in apply_patch's format (`*** Begin Patch` ...), through
    /// the `apply_patch` tool as the request declares it (a custom,
    /// freeform tool taking the patch as text, or a function taking
    /// `input`); the next request must carry its output.
    Patch(String),
    /// `response.failed` with this error message: the turn fails.
    Fail(String),
    /// `response.created`, then nothing for [`SLOW_FOR`] (or until the
    /// server stops or codex hangs up), then this message.
    Slow(String),
}

impl Reply {
    pub fn message(text: &str) -> Reply {
        Reply::Message(text.to_string())
    }
    pub fn shell(cmd: &str) -> Reply {
        Reply::Shell(cmd.to_string())
    }
    pub fn fail(message: &str) -> Reply {
        Reply::Fail(message.to_string())
    }
    pub fn slow(text: &str) -> Reply {
        Reply::Slow(text.to_string())
    }

    /// The patch that adds file `path` holding `lines`.
    pub fn add_file(path: &str, lines: &[&str]) -> Reply {
        let mut p = format!("*** Begin Patch\n*** Add File: {path}\n");
        for l in lines {
            let _ = writeln!(p, "+{l}");
        }
        p.push_str("*** End Patch\n");
        Reply::Patch(p)
    }
}

/// One request the server received.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The `input` items of a responses request.
    pub fn input(&self) -> Vec<Value> {
        self.json()["input"].as_array().cloned().unwrap_or_default()
    }

    /// The tool the request declares under `name`.
    pub fn tool(&self, name: &str) -> Option<Value> {
        self.json()["tools"]
            .as_array()?
            .iter()
            .find(|t| t["name"] == name)
            .cloned()
    }

    /// The names of the tools the request declares.
    pub fn tool_names(&self) -> Vec<String> {
        self.json()["tools"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .map(|t| {
                        t["name"]
                            .as_str()
                            .unwrap_or(t["type"].as_str().unwrap_or("?"))
                    })
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The tool output item answering call `call_id`, if the input holds one.
    pub fn tool_output(&self, call_id: &str) -> Option<Value> {
        self.input().into_iter().find(|i| {
            i["call_id"] == call_id
                && i["type"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("_call_output"))
        })
    }

    /// Where the request comes from, as codex says in its turn metadata
    /// (`client_metadata["x-codex-turn-metadata"]`, a JSON string):
    /// `"user"` for the turns of the conversation, something else for
    /// codex's own side requests (`"thread_title"`: the interactive codex
    /// asks the model for a title beside the first turn of a thread).
    pub fn thread_source(&self) -> Option<String> {
        let meta = self.json()["client_metadata"]["x-codex-turn-metadata"].clone();
        let meta: Value = serde_json::from_str(meta.as_str()?).ok()?;
        meta["thread_source"].as_str().map(str::to_string)
    }

    /// A side request of codex's (not a turn of the conversation): answered
    /// without using a scripted reply.
    pub fn is_side(&self) -> bool {
        self.thread_source().is_some_and(|s| s != "user")
    }

    /// Whether the body contains `needle` anywhere (the user's prompt...).
    pub fn contains(&self, needle: &str) -> bool {
        let n = needle.as_bytes();
        self.body.windows(n.len().max(1)).any(|w| w == n)
    }

    fn summary(&self) -> String {
        let j = self.json();
        let last = self.input().last().map_or(String::new(), |v| {
            let s = v.to_string();
            s.chars().take(300).collect()
        });
        format!(
            "{} {} ({} bytes, model {}, source {:?}, {} tools, {} input items, last: {last})",
            self.method,
            self.path,
            self.body.len(),
            j["model"],
            self.thread_source(),
            self.tool_names().len(),
            self.input().len()
        )
    }
}

/// What the server thread and connection threads share.
#[derive(Default)]
struct State {
    stop: AtomicBool,
    replies: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Request>>,
    /// Scripted turns that went wrong (a tool not advertised, an output
    /// that never came back, a request with no reply left...).
    problems: Mutex<Vec<String>>,
    /// The tool call whose output the next request must carry.
    pending_call: Mutex<Option<String>>,
    /// Numbers responses and calls.
    next: AtomicUsize,
    /// Slow replies currently holding a response open.
    slow_open: AtomicUsize,
}

impl State {
    fn problem(&self, p: String) {
        self.problems.lock().unwrap().push(p);
    }
}

/// The running server; stopped (and its threads told to end) when dropped.
pub struct ModelServer {
    port: u16,
    state: Arc<State>,
    thread: Option<JoinHandle<()>>,
}

impl ModelServer {
    /// Starts a server that answers with `replies`, in order.
    pub fn start(replies: impl IntoIterator<Item = Reply>) -> ModelServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State::default());
        state.replies.lock().unwrap().extend(replies);
        let st = Arc::clone(&state);
        let thread = thread::spawn(move || accept_loop(&listener, &st));
        ModelServer {
            port,
            state,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT/v1`, codex's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The `POST /v1/responses` requests of the conversation so far (side
    /// requests left out), each answered by a scripted reply.
    pub fn turns(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/responses") && !r.is_side())
            .collect()
    }

    /// What went wrong in the script (empty when all went as scripted).
    pub fn problems(&self) -> Vec<String> {
        self.state.problems.lock().unwrap().clone()
    }

    /// Replies not yet used.
    pub fn replies_left(&self) -> usize {
        self.state.replies.lock().unwrap().len()
    }

    /// How many slow replies hold their response open right now.
    pub fn slow_open(&self) -> usize {
        self.state.slow_open.load(Ordering::SeqCst)
    }

    /// The requests, replies left and problems, for failure messages.
    pub fn describe(&self) -> String {
        let mut out = format!("--- model server on port {} ---\n", self.port);
        for (i, r) in self.requests().iter().enumerate() {
            let _ = writeln!(out, "request {i}: {}", r.summary());
        }
        let _ = writeln!(out, "replies left: {}", self.replies_left());
        for p in self.problems() {
            let _ = writeln!(out, "problem: {p}");
        }
        out
    }

    /// Fails unless every reply was used and nothing went wrong.
    pub fn assert_script_done(&self) {
        assert!(
            self.problems().is_empty() && self.replies_left() == 0,
            "the model server's script did not run as written\n{}",
            self.describe()
        );
    }

    /// Stops the server: no new connection, open ones (slow replies
    /// included) end within a step.
    pub fn stop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: &TcpListener, state: &Arc<State>) {
    let mut conns: Vec<JoinHandle<()>> = Vec::new();
    while !state.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let st = Arc::clone(state);
                conns.push(thread::spawn(move || {
                    if let Err(e) = serve(stream, &st) {
                        if !st.stop.load(Ordering::SeqCst) && !is_hangup(&e) {
                            st.problem(format!("connection: {e}"));
                        }
                    }
                }));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(STEP),
            Err(e) => {
                state.problem(format!("accept: {e}"));
                thread::sleep(STEP);
            }
        }
        conns.retain(|c| !c.is_finished());
    }
    for c in conns {
        let _ = c.join();
    }
}

/// Whether a read failed only because nothing came within its timeout
/// (or a signal interrupted it): worth trying again.
fn is_no_data_yet(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

fn is_hangup(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
    )
}

/// A connection: requests one after the other (keep-alive) until the
/// client closes it, asks to close it, or the server stops.
fn serve(mut stream: TcpStream, state: &State) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(STEP))?;
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    loop {
        let Some(req) = read_request(&mut stream, &mut buf, state)? else {
            return Ok(());
        };
        let close = req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        state.requests.lock().unwrap().push(req.clone());
        if req.method == "POST" && req.path.ends_with("/responses") {
            respond_turn(&mut stream, &req, state)?;
        } else {
            let body = b"not found\n";
            write!(
                stream,
                "HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )?;
            stream.write_all(body)?;
        }
        stream.flush()?;
        if close || state.stop.load(Ordering::SeqCst) {
            let _ = stream.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

/// Reads more bytes into `buf`; `Ok(false)` at the end of the stream.
/// Gives up (an error) when the server stops.
fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, state: &State) -> io::Result<bool> {
    let mut chunk = [0u8; 65536];
    loop {
        if state.stop.load(Ordering::SeqCst) {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "server stopped"));
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > MAX_REQUEST {
                    return Err(io::Error::other("request too large"));
                }
                return Ok(true);
            }
            Err(e) if is_no_data_yet(&e) => {}
            Err(e) => return Err(e),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A connection reader: the stream, what was read ahead, the state.
struct Reader<'a> {
    stream: &'a mut TcpStream,
    buf: &'a mut Vec<u8>,
    state: &'a State,
}

impl Reader<'_> {
    /// Reads until the buffer holds `needle`; its position.
    fn to(&mut self, needle: &[u8]) -> io::Result<usize> {
        loop {
            if let Some(i) = find(self.buf, needle) {
                return Ok(i);
            }
            if !fill(self.stream, self.buf, self.state)? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Reads until the buffer holds `n` bytes.
    fn len(&mut self, n: usize) -> io::Result<()> {
        while self.buf.len() < n {
            if !fill(self.stream, self.buf, self.state)? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(())
    }
}

/// Reads one request (head, then a content-length or chunked body);
/// `None` when the client closed the connection between requests.
fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    state: &State,
) -> io::Result<Option<Request>> {
    let mut r = Reader { stream, buf, state };
    let head_end = match r.to(b"\r\n\r\n") {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && r.buf.is_empty() => return Ok(None),
        other => other?,
    };
    let head = String::from_utf8_lossy(&r.buf[..head_end]).into_owned();
    r.buf.drain(..head_end + 4);
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let mut req = Request {
        method: first.next().unwrap_or("").to_string(),
        path: first.next().unwrap_or("").to_string(),
        headers: lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect(),
        body: Vec::new(),
    };
    let has = |req: &Request, name: &str, value: &str| {
        req.header(name)
            .is_some_and(|v| v.to_ascii_lowercase().contains(value))
    };
    if has(&req, "expect", "100-continue") {
        r.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    if has(&req, "transfer-encoding", "chunked") {
        loop {
            let end = r.to(b"\r\n")?;
            let line = String::from_utf8_lossy(&r.buf[..end]).into_owned();
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| io::Error::other(format!("bad chunk size {line:?}")))?;
            r.buf.drain(..end + 2);
            if size == 0 {
                // Trailers, up to an empty line.
                while r.to(b"\r\n")? > 0 {
                    let end = r.to(b"\r\n")?;
                    r.buf.drain(..end + 2);
                }
                r.buf.drain(..2);
                break;
            }
            r.len(size + 2)?;
            req.body.extend_from_slice(&r.buf[..size]);
            r.buf.drain(..size + 2);
        }
    } else {
        let len: usize = req
            .header("content-length")
            .map_or(Ok(0), str::parse)
            .map_err(|_| io::Error::other("bad content-length"))?;
        r.len(len)?;
        req.body = r.buf.drain(..len).collect();
    }
    if let Some(enc) = req.header("content-encoding") {
        if !enc.eq_ignore_ascii_case("identity") {
            state.problem(format!("request body compressed ({enc}): cannot read it"));
        }
    }
    Ok(Some(req))
}

/// One server-sent event.
fn event(kind: &str, mut data: Value) -> String {
    data["type"] = json!(kind);
    format!("event: {kind}\ndata: {data}\n\n")
}

fn usage() -> Value {
    let (i, o) = USAGE;
    json!({
        "input_tokens": i,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": o,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": i + o,
    })
}

fn message_item(n: usize, text: &str) -> Value {
    json!({
        "type": "message",
        "role": "assistant",
        "id": format!("msg_{n}"),
        "content": [{"type": "output_text", "text": text}],
    })
}

/// The events of a response made of `item` (none for a failure).
fn response_events(resp: &str, item: Option<Value>, fail: Option<&str>) -> String {
    let mut out = event("response.created", json!({"response": {"id": resp}}));
    if let Some(item) = item {
        out += &event(
            "response.output_item.done",
            json!({"output_index": 0, "item": item}),
        );
    }
    match fail {
        None => {
            out += &event(
                "response.completed",
                json!({"response": {"id": resp, "usage": usage()}}),
            );
        }
        Some(msg) => {
            out += &event(
                "response.failed",
                json!({"response": {
                    "id": resp,
                    "status": "failed",
                    "error": {"code": "invalid_prompt", "message": msg},
                }}),
            );
        }
    }
    out
}

/// The output item that calls the shell tool the request advertises.
fn shell_call(req: &Request, call_id: &str, cmd: &str) -> Result<Value, String> {
    if req.tool("exec_command").is_some() {
        return Ok(json!({
            "type": "function_call",
            "call_id": call_id,
            "name": "exec_command",
            "arguments": json!({"cmd": cmd}).to_string(),
        }));
    }
    if req.tool("shell").is_some() {
        return Ok(json!({
            "type": "function_call",
            "call_id": call_id,
            "name": "shell",
            "arguments": json!({"command": ["bash", "-lc", cmd]}).to_string(),
        }));
    }
    Err(format!(
        "no shell tool (exec_command or shell) among {:?}",
        req.tool_names()
    ))
}

/// The output item that calls apply_patch as the request declares it.
fn patch_call(req: &Request, call_id: &str, patch: &str) -> Result<Value, String> {
    let Some(tool) = req.tool("apply_patch") else {
        return Err(format!("no apply_patch tool among {:?}", req.tool_names()));
    };
    match tool["type"].as_str() {
        Some("custom") => Ok(json!({
            "type": "custom_tool_call",
            "call_id": call_id,
            "name": "apply_patch",
            "input": patch,
        })),
        Some("function") => Ok(json!({
            "type": "function_call",
            "call_id": call_id,
            "name": "apply_patch",
            "arguments": json!({"input": patch}).to_string(),
        })),
        other => Err(format!("apply_patch is a tool of unknown type {other:?}")),
    }
}

fn respond_turn(stream: &mut TcpStream, req: &Request, state: &State) -> io::Result<()> {
    let n = state.next.fetch_add(1, Ordering::SeqCst) + 1;
    let resp = format!("resp_{n}");
    if req.is_side() {
        let body = response_events(&resp, Some(message_item(n, SIDE_ANSWER)), None);
        return write_events(stream, &body);
    }
    if let Some(call) = state.pending_call.lock().unwrap().take() {
        if req.tool_output(&call).is_none() {
            state.problem(format!(
                "request {n} does not carry the output of tool call {call}"
            ));
        }
    }
    let reply = state.replies.lock().unwrap().pop_front();
    let call_id = format!("call_{n}");
    let mut pending = None;
    // A tool call: its item, to be answered by the next request.
    let mut call = |item: Result<Value, String>| match item {
        Ok(item) => {
            pending = Some(call_id.clone());
            response_events(&resp, Some(item), None)
        }
        Err(e) => {
            state.problem(format!("request {n}: {e}"));
            response_events(&resp, None, Some(&e))
        }
    };
    let body = match reply {
        None => {
            state.problem(format!("request {n}: no scripted reply left"));
            response_events(&resp, None, Some("the model server has no reply left"))
        }
        Some(Reply::Message(text)) => response_events(&resp, Some(message_item(n, &text)), None),
        Some(Reply::Fail(msg)) => response_events(&resp, None, Some(&msg)),
        Some(Reply::Shell(cmd)) => call(shell_call(req, &call_id, &cmd)),
        Some(Reply::Patch(patch)) => call(patch_call(req, &call_id, &patch)),
        Some(Reply::Slow(text)) => return slow(stream, state, &resp, &message_item(n, &text)),
    };
    *state.pending_call.lock().unwrap() = pending;
    write_events(stream, &body)
}

/// Answers with `body`, server-sent events of a known length.
fn write_events(stream: &mut TcpStream, body: &str) -> io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body.as_bytes())
}

/// Writes one chunk of a chunked body.
fn chunk(stream: &mut TcpStream, data: &str) -> io::Result<()> {
    write!(stream, "{:x}\r\n{data}\r\n", data.len())?;
    stream.flush()
}

/// A slow turn: `response.created` at once, then the response held open
/// (checking every step whether the server stops or codex hung up) for
/// [`SLOW_FOR`], then the message.
fn slow(stream: &mut TcpStream, state: &State, resp: &str, item: &Value) -> io::Result<()> {
    stream.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
          transfer-encoding: chunked\r\n\r\n",
    )?;
    chunk(
        stream,
        &event("response.created", json!({"response": {"id": resp}})),
    )?;
    state.slow_open.fetch_add(1, Ordering::SeqCst);
    let held = hold(stream, state);
    state.slow_open.fetch_sub(1, Ordering::SeqCst);
    if !held? {
        return Ok(());
    }
    chunk(
        stream,
        &event(
            "response.output_item.done",
            json!({"output_index": 0, "item": item}),
        ),
    )?;
    chunk(
        stream,
        &event(
            "response.completed",
            json!({"response": {"id": resp, "usage": usage()}}),
        ),
    )?;
    stream.write_all(b"0\r\n\r\n")
}

/// Holds a response open for [`SLOW_FOR`]; false when the server stopped
/// or the client hung up meanwhile.
fn hold(stream: &mut TcpStream, state: &State) -> io::Result<bool> {
    let deadline = Instant::now() + SLOW_FOR;
    let mut probe = [0u8; 1];
    while Instant::now() < deadline {
        if state.stop.load(Ordering::SeqCst) {
            return Ok(false);
        }
        // The read timeout is one step: a read that returns 0 is a hang-up.
        match stream.peek(&mut probe) {
            Ok(0) => return Ok(false),
            Ok(_) => thread::sleep(STEP),
            Err(e) if is_no_data_yet(&e) => {}
            Err(e) if is_hangup(&e) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

// ---------------------------------------------------------------------
// CODEX_HOME and the codex binary

/// Writes `<dir>/codex-home/config.toml` pointing codex at `server` (no
/// account, no retries, no model-upgrade notice) followed by `extra` TOML,
/// and returns the CODEX_HOME directory.
pub fn codex_home(dir: &Path, server: &ModelServer, extra: &str) -> PathBuf {
    let home = dir.join("codex-home");
    fs::create_dir_all(&home).unwrap_or_else(|e| panic!("{}: {e}", home.display()));
    let config = format!(
        r#"model = "{MODEL}"
model_provider = "mock"
{extra}
[model_providers.mock]
name = "mock"
base_url = "{}"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0

[notice.model_migrations]
"{MODEL}" = "gpt-6-sol"
"#,
        server.base_url()
    );
    fs::write(home.join("config.toml"), config).unwrap();
    home
}

/// The repository's root: the parent of the tests package.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package is inside the repository")
        .to_path_buf()
}

/// The native codex binary that `scripts/test` installs into
/// `<repo>/.cache/codex` (`node_modules/@openai/codex-linux-ARCH/vendor/
/// TRIPLE/bin/codex`); panics when it is not there.
pub fn codex_bin() -> PathBuf {
    let scope = repo_root().join(".cache/codex/node_modules/@openai");
    let found = fs::read_dir(&scope).ok().and_then(|rd| {
        let mut pkgs: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("codex-linux-"))
            })
            .collect();
        pkgs.sort();
        pkgs.into_iter().find_map(|pkg| {
            let mut triples: Vec<PathBuf> = fs::read_dir(pkg.join("vendor"))
                .ok()?
                .flatten()
                .map(|e| e.path().join("bin/codex"))
                .filter(|b| b.is_file())
                .collect();
            triples.sort();
            triples.into_iter().next()
        })
    });
    found.unwrap_or_else(|| {
        panic!(
            "the codex binary (@openai/codex@{CODEX_VERSION}) is not under {}: \
             run scripts/test to install codex",
            scope.display()
        )
    })
}

/// Reads one response of a known length (or the head of a chunked one)
/// from `stream`: its head and its body.
fn read_response(stream: &mut TcpStream) -> (String, String) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).expect("reading a response");
        assert!(n > 0, "the server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).expect("reading a body");
        assert!(n > 0, "the server closed the connection mid-body");
        body.extend_from_slice(&chunk[..n]);
    }
    (head, String::from_utf8_lossy(&body).into_owned())
}

/// The server itself: a chunked request body, then a second request on
/// the same connection, a side request that uses no reply, a request
/// with no reply left, and a 404.
#[test]
fn model_server_speaks_http_as_codex_needs() {
    let server = ModelServer::start([Reply::message("one"), Reply::fail("two")]);
    let mut c = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    let body = r#"{"model":"m","input":[{"type":"message","role":"user","content":[]}]}"#;
    let (a, b) = body.split_at(10);
    write!(
        c,
        "POST /v1/responses HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n\
         {:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    )
    .unwrap();
    let (head, events) = read_response(&mut c);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/event-stream"), "{head}");
    assert!(events.contains("event: response.created\n"), "{events}");
    assert!(events.contains(r#""text":"one""#), "{events}");
    assert!(events.contains("event: response.completed\n"), "{events}");
    assert_eq!(server.turns()[0].body, body.as_bytes());

    // A side request (a thread title) on the same connection.
    let meta =
        json!({"x-codex-turn-metadata": json!({"thread_source": "thread_title"}).to_string()});
    let side = json!({"model": "m", "input": [], "client_metadata": meta}).to_string();
    write!(
        c,
        "POST /v1/responses HTTP/1.1\r\ncontent-length: {}\r\n\r\n{side}",
        side.len()
    )
    .unwrap();
    let (_, events) = read_response(&mut c);
    assert!(events.contains(SIDE_ANSWER), "{events}");
    assert_eq!(server.turns().len(), 1);
    assert_eq!(server.replies_left(), 1);

    // The failure, then nothing left.
    for expect in ["two", "no reply left"] {
        write!(
            c,
            "POST /v1/responses HTTP/1.1\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let (_, events) = read_response(&mut c);
        assert!(events.contains("event: response.failed\n"), "{events}");
        assert!(events.contains(expect), "{events}");
    }
    assert_eq!(server.problems().len(), 1, "{}", server.describe());

    c.write_all(b"GET /v1/models HTTP/1.1\r\nconnection: close\r\n\r\n")
        .unwrap();
    let (head, _) = read_response(&mut c);
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    assert_eq!(server.requests().len(), 5);
}

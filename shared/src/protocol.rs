//! The attach protocol, spoken over `attach.sock` between codex-attach and
//! the supervisor.
//!
//! Every message is a frame: one byte of type, a little-endian `u32` length,
//! then that many bytes of payload. The client opens with [`Hello`]; the
//! supervisor answers [`Welcome`] (or an error frame and closes). Then:
//!
//! | type | direction | payload |
//! |---|---|---|
//! | `H` hello | client → supervisor | JSON [`Hello`] |
//! | `W` welcome | supervisor → client | JSON [`Welcome`] |
//! | `I` input | client → supervisor | bytes for the command's terminal or stdin |
//! | `Z` resize | client → supervisor | `u16` columns, `u16` rows (LE) |
//! | `C` close | client → supervisor | empty: no more input (the end of a `--stdin` session's input; a tty session's end-of-file character) |
//! | `D` detach | client → supervisor | empty |
//! | `S` sync | client → supervisor | empty: answer `K` once all the input sent before it is delivered |
//! | `K` delivered | supervisor → client | JSON [`Delivered`]: the answer to `S` |
//! | `O` stdout | supervisor → client | bytes the command wrote (a tty session's only stream) |
//! | `E` stderr | supervisor → client | bytes the command wrote to stderr |
//! | `X` exit | supervisor → client | JSON [`Exit`], sent after the final record is written |
//! | `!` error | supervisor → client | a message, then the connection closes |
//!
//! The supervisor checks the peer's uid (SO_PEERCRED) before anything else;
//! the client checks the same of the socket's server, and gives it
//! [`HANDSHAKE_TIMEOUT`] to answer, so that a socket some other program
//! put in the session's place is refused rather than hung on.
//!
//! **Input is never dropped.** While the command's input backlog is full
//! the supervisor stops reading the clients that send input (they block,
//! back-pressure), rather than dropping bytes. A client that must know its
//! input arrived (codex-attach before it exits on the end of piped input)
//! sends `S`; the supervisor answers `K` once every byte received before
//! the `S` has been written to the command's stdin pipe or terminal, or
//! with an error once that can no longer happen (the command stopped
//! reading its input, or the input was closed). A supervisor that answers
//! `S` says so in its welcome (`delivery`).

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The protocol version this crate speaks.
pub const VERSION: u32 = 1;
/// The largest payload accepted in one frame.
pub const MAX_FRAME: usize = 1 << 20;
/// How long a client waits for the answer to its hello: the supervisor
/// answers at once from its poll loop, so a server silent for longer is not
/// the session's supervisor.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A client's opening message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the client speaks.
    pub version: u32,
    /// Whether the client will send input.
    pub input: bool,
    /// The client terminal's size (columns, rows), when it has one.
    #[serde(default)]
    pub size: Option<(u16, u16)>,
    /// Whether the client shows the output on a terminal and forwards
    /// what that terminal sends: it then answers the program's terminal
    /// queries, and the supervisor no longer does.
    #[serde(default)]
    pub terminal: bool,
}

/// The supervisor's answer to [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The protocol version the supervisor speaks.
    pub version: u32,
    /// Whether the session runs in a pty.
    pub tty: bool,
    /// Whether the command takes input (a tty, or `--stdin`).
    pub stdin: bool,
    /// Entries in the index when the client joined: output after this
    /// point comes as frames, output before it is in the logs.
    pub index_len: u64,
    /// Bytes logged on stdout when the client joined.
    pub stdout_len: u64,
    /// Bytes logged on stderr when the client joined.
    pub stderr_len: u64,
    /// The supervisor answers [`Frame::Sync`] (older ones do not).
    #[serde(default)]
    pub delivery: bool,
}

/// The answer to [`Frame::Sync`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivered {
    /// Every byte of input sent before the sync reached the command.
    pub delivered: bool,
    /// Why not, when not.
    #[serde(default)]
    pub error: Option<String>,
}

/// How the session ended, sent to attached clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// The exit code (128+N when signal N killed the command).
    pub code: i32,
    /// The signal's name when a signal killed the command.
    #[serde(default)]
    pub signal: Option<String>,
}

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Client's opening.
    Hello(Hello),
    /// Supervisor's answer.
    Welcome(Welcome),
    /// Input for the command.
    Input(Vec<u8>),
    /// The client's terminal size: columns, rows.
    Resize(u16, u16),
    /// No more input: the command's stdin is closed.
    Close,
    /// The client leaves.
    Detach,
    /// Asks to be told once the input sent so far is delivered.
    Sync,
    /// The answer to [`Frame::Sync`].
    Delivered(Delivered),
    /// Output on stdout (or the terminal).
    Stdout(Vec<u8>),
    /// Output on stderr.
    Stderr(Vec<u8>),
    /// The session ended.
    Exit(Exit),
    /// A refusal; the connection closes after it.
    Error(String),
}

impl Frame {
    /// The frame as sent.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, payload): (u8, std::borrow::Cow<'_, [u8]>) = match self {
            Frame::Hello(h) => (b'H', json(h).into()),
            Frame::Welcome(w) => (b'W', json(w).into()),
            Frame::Input(b) => (b'I', b.as_slice().into()),
            Frame::Resize(c, r) => {
                let mut p = c.to_le_bytes().to_vec();
                p.extend_from_slice(&r.to_le_bytes());
                (b'Z', p.into())
            }
            Frame::Close => (b'C', Vec::new().into()),
            Frame::Detach => (b'D', Vec::new().into()),
            Frame::Sync => (b'S', Vec::new().into()),
            Frame::Delivered(d) => (b'K', json(d).into()),
            Frame::Stdout(b) => (b'O', b.as_slice().into()),
            Frame::Stderr(b) => (b'E', b.as_slice().into()),
            Frame::Exit(x) => (b'X', json(x).into()),
            Frame::Error(m) => (b'!', m.as_bytes().into()),
        };
        let mut out = Vec::with_capacity(5 + payload.len());
        out.push(kind);
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }

    /// Takes one whole frame off the front of `buf`: `Ok(None)` when more
    /// bytes are needed, an error for a frame that makes no sense.
    pub fn decode(buf: &mut Vec<u8>) -> io::Result<Option<Frame>> {
        if buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_le_bytes(buf[1..5].try_into().unwrap()) as usize;
        if len > MAX_FRAME {
            return Err(bad("frame too large"));
        }
        if buf.len() < 5 + len {
            return Ok(None);
        }
        let kind = buf[0];
        let payload: Vec<u8> = buf[5..5 + len].to_vec();
        buf.drain(..5 + len);
        Ok(Some(match kind {
            b'H' => Frame::Hello(parse(&payload)?),
            b'W' => Frame::Welcome(parse(&payload)?),
            b'I' => Frame::Input(payload),
            b'Z' if payload.len() == 4 => Frame::Resize(
                u16::from_le_bytes([payload[0], payload[1]]),
                u16::from_le_bytes([payload[2], payload[3]]),
            ),
            b'C' => Frame::Close,
            b'D' => Frame::Detach,
            b'S' => Frame::Sync,
            b'K' => Frame::Delivered(parse(&payload)?),
            b'O' => Frame::Stdout(payload),
            b'E' => Frame::Stderr(payload),
            b'X' => Frame::Exit(parse(&payload)?),
            b'!' => Frame::Error(String::from_utf8_lossy(&payload).into_owned()),
            _ => return Err(bad("unknown frame type")),
        }))
    }

    /// Reads one whole frame from a blocking stream (`Ok(None)` at its end).
    pub fn read_from(stream: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<Option<Frame>> {
        loop {
            if let Some(f) = Frame::decode(buf)? {
                return Ok(Some(f));
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Ok(None);
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Writes the frame to a blocking stream.
    pub fn write_to(&self, stream: &mut impl Write) -> io::Result<()> {
        stream.write_all(&self.encode())
    }
}

fn parse<T: for<'de> Deserialize<'de>>(payload: &[u8]) -> io::Result<T> {
    serde_json::from_slice(payload).map_err(|e| bad(&e.to_string()))
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("protocol messages always serialize")
}

fn bad(why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("attach protocol: {why}"),
    )
}

/// The longest socket path `sun_path` holds (with its terminating NUL).
const SUN_PATH_MAX: usize = 107;

/// A path naming `dir/attach.sock` that fits in `sun_path`: the path itself
/// when short enough, else the same file reached through `/proc/self/fd`
/// and `dir_fd`, an open descriptor of `dir` the caller keeps open while
/// binding or connecting.
pub fn socket_path(dir: &Path, dir_fd: Option<std::os::fd::RawFd>) -> PathBuf {
    let direct = dir.join(crate::layout::SOCKET);
    match dir_fd {
        Some(fd) if direct.as_os_str().len() > SUN_PATH_MAX => {
            PathBuf::from(format!("/proc/self/fd/{fd}/{}", crate::layout::SOCKET))
        }
        _ => direct,
    }
}

/// Connects to the attach socket of the session in `dir` and shakes hands.
pub fn connect(dir: &Path, hello: &Hello) -> io::Result<(UnixStream, Welcome)> {
    let dir_file = std::fs::File::open(dir)?;
    let path = socket_path(dir, Some(std::os::fd::AsRawFd::as_raw_fd(&dir_file)));
    let mut stream = UnixStream::connect(&path)?;
    drop(dir_file);
    check_server(&stream)?;
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    stream.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let timed_out = |e: io::Error| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no answer on the socket in {} s: not the session's supervisor, or a stopped one",
                HANDSHAKE_TIMEOUT.as_secs()
            ),
        ),
        _ => e,
    };
    Frame::Hello(hello.clone())
        .write_to(&mut stream)
        .map_err(timed_out)?;
    let mut buf = Vec::new();
    match Frame::read_from(&mut stream, &mut buf).map_err(timed_out)? {
        Some(Frame::Welcome(w)) if w.version == VERSION => {
            stream.set_read_timeout(None)?;
            stream.set_write_timeout(None)?;
            Ok((stream, w))
        }
        Some(Frame::Welcome(w)) => {
            Err(bad(&format!("the supervisor speaks version {}", w.version)))
        }
        Some(Frame::Error(m)) => Err(io::Error::other(m)),
        Some(_) => Err(bad("unexpected answer")),
        None => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the supervisor closed the connection",
        )),
    }
}

/// Refuses a socket served by another user: the supervisor runs as the
/// user who started the session, so a server of another uid is an
/// impostor (a socket put in the session's place).
fn check_server(stream: &UnixStream) -> io::Result<()> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let server = getsockopt(stream, PeerCredentials).map_err(io::Error::from)?;
    let me = nix::unistd::geteuid().as_raw();
    if server.uid() != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "the socket is served by uid {}, not by you (uid {me}): not the session's supervisor",
                server.uid()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_even_split() {
        let frames = vec![
            Frame::Hello(Hello {
                version: 1,
                input: true,
                size: Some((80, 24)),
                terminal: true,
            }),
            Frame::Welcome(Welcome {
                version: 1,
                tty: true,
                stdin: true,
                index_len: 7,
                stdout_len: 9,
                stderr_len: 0,
                delivery: true,
            }),
            Frame::Input(b"ls\r".to_vec()),
            Frame::Sync,
            Frame::Delivered(Delivered {
                delivered: false,
                error: Some("gone".into()),
            }),
            Frame::Resize(132, 43),
            Frame::Close,
            Frame::Detach,
            Frame::Stdout(vec![0, 255, 27]),
            Frame::Stderr(b"oops".to_vec()),
            Frame::Exit(Exit {
                code: 143,
                signal: Some("SIGTERM".into()),
            }),
            Frame::Error("no".into()),
        ];
        let wire: Vec<u8> = frames.iter().flat_map(Frame::encode).collect();
        // Fed one byte at a time, the same frames come out.
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for b in wire {
            buf.push(b);
            while let Some(f) = Frame::decode(&mut buf).unwrap() {
                out.push(f);
            }
        }
        assert_eq!(out, frames);
    }

    #[test]
    fn a_frame_of_the_largest_payload_is_accepted() {
        let largest = Frame::Stdout(vec![7; MAX_FRAME]);
        let mut buf = largest.encode();
        assert_eq!(Frame::decode(&mut buf).unwrap(), Some(largest));
        assert!(buf.is_empty());
    }

    #[test]
    fn a_resize_of_the_wrong_length_is_refused_not_a_panic() {
        for len in [0usize, 3, 5] {
            let mut frame = vec![b'Z'];
            frame.extend_from_slice(&(len as u32).to_le_bytes());
            frame.extend(std::iter::repeat_n(1u8, len));
            assert!(Frame::decode(&mut frame).is_err(), "{len} bytes");
        }
    }

    #[test]
    fn frames_written_to_a_stream_are_read_back_until_its_end() {
        let frames = [
            Frame::Stdout(vec![b'x'; 3 * 64 * 1024]),
            Frame::Sync,
            Frame::Resize(80, 24),
        ];
        let mut wire = Vec::new();
        for f in &frames {
            f.write_to(&mut wire).unwrap();
        }
        let mut stream = &wire[..];
        let mut buf = Vec::new();
        for f in &frames {
            assert_eq!(
                Frame::read_from(&mut stream, &mut buf).unwrap().as_ref(),
                Some(f)
            );
        }
        assert_eq!(Frame::read_from(&mut stream, &mut buf).unwrap(), None);
    }

    /// A server on `dir/attach.sock` that answers one hello with `answer`
    /// (or not at all), then waits for the client to go.
    fn serve(dir: &Path, answer: Option<Frame>) -> std::thread::JoinHandle<()> {
        let listener = std::os::unix::net::UnixListener::bind(dir.join("attach.sock")).unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = Vec::new();
            let hello = Frame::read_from(&mut s, &mut buf).unwrap();
            assert!(matches!(hello, Some(Frame::Hello(_))), "{hello:?}");
            if let Some(a) = answer {
                a.write_to(&mut s).unwrap();
            }
            let _ = Frame::read_from(&mut s, &mut buf);
        })
    }

    #[test]
    fn connect_shakes_hands_with_the_same_version_only() {
        let welcome = |version| Welcome {
            version,
            tty: false,
            stdin: true,
            index_len: 3,
            stdout_len: 4,
            stderr_len: 5,
            delivery: true,
        };
        let hello = Hello {
            version: VERSION,
            input: true,
            size: None,
            terminal: false,
        };
        let dir = crate::testdir::TempDir::new("protocol");
        let server = serve(dir.path(), Some(Frame::Welcome(welcome(VERSION))));
        let (stream, w) = connect(dir.path(), &hello).unwrap();
        assert_eq!(w, welcome(VERSION));
        drop(stream);
        server.join().unwrap();

        let dir = crate::testdir::TempDir::new("protocol");
        let server = serve(dir.path(), Some(Frame::Welcome(welcome(VERSION + 1))));
        let err = connect(dir.path(), &hello).unwrap_err().to_string();
        assert!(
            err.contains(&format!("speaks version {}", VERSION + 1)),
            "{err}"
        );
        server.join().unwrap();
    }

    #[test]
    fn refuses_nonsense() {
        let mut huge = vec![b'O'];
        huge.extend_from_slice(&(MAX_FRAME as u32 + 1).to_le_bytes());
        assert!(Frame::decode(&mut huge).is_err());
        let mut unknown = vec![b'?', 0, 0, 0, 0];
        assert!(Frame::decode(&mut unknown).is_err());
    }

    #[test]
    fn long_socket_paths_go_through_proc() {
        let long = PathBuf::from(format!("/tmp/{}", "x".repeat(120)));
        assert_eq!(
            socket_path(&long, Some(5)),
            PathBuf::from("/proc/self/fd/5/attach.sock")
        );
        assert_eq!(
            socket_path(Path::new("/r/id"), Some(5)),
            PathBuf::from("/r/id/attach.sock")
        );
        // The longest that fits (107 bytes and the NUL) is used as it is.
        let longest = PathBuf::from(format!("/{}", "y".repeat(107 - "/attach.sock".len() - 1)));
        let direct = longest.join("attach.sock");
        assert_eq!(direct.as_os_str().len(), SUN_PATH_MAX);
        assert_eq!(socket_path(&longest, Some(5)), direct);
    }
}

//! The human table: `#  ID  PID  TYPE  STATUS  OUT  ERR  CREATED  TIME
//! TOKENS  PROMPT`.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use shared::agent::AgentState;
use shared::layout::Stream;
use shared::units::human_size;
use shared::worktree::{WorkStatus, Worktree};
use shared::{Kind, Session, Status, Timestamp};
use tabled::builder::Builder;
use tabled::settings::{Padding, Style};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// The columns, in order.
const HEADER: [&str; COLUMNS] = [
    "#", "ID", "PID", "TYPE", "STATUS", "OUT", "ERR", "CREATED", "TIME", "TOKENS", "PROMPT",
];
const COLUMNS: usize = 11;
/// The last column, cut to fit.
const PROMPT: usize = COLUMNS - 1;
/// Spaces between columns (one from the style, the rest padding).
const GAP: usize = 3;
/// How to draw the table.
pub struct Look {
    /// Colour the STATUS column (a terminal, NO_COLOR unset).
    pub colour: bool,
    /// Cut PROMPT so that rows fit this many columns.
    pub width: Option<usize>,
    /// CREATED relative to now ("3 min ago"), for people at a terminal;
    /// else RFC 3339.
    pub relative: Option<Timestamp>,
}

/// Renders `rows` (row number and session) as the table, header included,
/// with a trailing newline.
pub fn render(rows: &[(usize, &Session)], look: &Look) -> String {
    let mut cells: Vec<[String; COLUMNS]> = rows.iter().map(|(i, s)| cells(*i, s, look)).collect();
    let mut shown = [true; COLUMNS];
    if let Some(width) = look.width {
        let room = fit(&cells, &mut shown, width);
        for row in &mut cells {
            row[PROMPT] = cut(&row[PROMPT], room);
        }
    }
    let keep = |row: [String; COLUMNS]| -> Vec<String> {
        row.into_iter()
            .zip(shown)
            .filter_map(|(cell, shown)| shown.then_some(cell))
            .collect()
    };
    let mut builder = Builder::with_capacity(rows.len() + 1, HEADER.len());
    builder.push_record(keep(HEADER.map(String::from)));
    for (row, (_, session)) in cells.into_iter().zip(rows) {
        let mut row = row;
        if look.colour {
            row[4] = paint(&row[4], session.status);
        }
        builder.push_record(keep(row));
    }
    finish(builder)
}

/// The table `builder` holds, as text: borderless, columns [`GAP`] apart,
/// no padding at the end of a line.
pub fn finish(builder: Builder) -> String {
    let mut table = builder.build();
    table
        .with(Style::blank())
        .with(Padding::new(0, GAP - 1, 0, 0));
    let mut out = table
        .to_string()
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}

/// The columns given up, in this order, before PROMPT is cut shorter than
/// [`ROOMY_PROMPT`] on a narrow terminal: ERR, OUT, TOKENS, PID, TIME,
/// TYPE, CREATED.
const GIVE_UP: [usize; 7] = [6, 5, 9, 2, 8, 3, 7];
/// A PROMPT this wide is worth more than the columns of [`GIVE_UP`].
const ROOMY_PROMPT: usize = 30;

/// Hides columns of [`GIVE_UP`] while PROMPT would get less than
/// [`ROOMY_PROMPT`] of `width`, then brings back those that fit again;
/// the room left for PROMPT. Widths are terminal columns (wide characters
/// count two), so rows never wrap while the ids fit.
fn fit(cells: &[[String; COLUMNS]], shown: &mut [bool; COLUMNS], width: usize) -> usize {
    let widths: Vec<usize> = (0..PROMPT)
        .map(|c| {
            let widest = cells.iter().map(|r| r[c].width()).max().unwrap_or(0);
            widest.max(HEADER[c].len()) + GAP
        })
        .collect();
    let room = |shown: &[bool; COLUMNS]| {
        let used: usize = (0..PROMPT).filter(|&c| shown[c]).map(|c| widths[c]).sum();
        width.saturating_sub(used)
    };
    let longest = cells.iter().map(|r| r[PROMPT].width()).max().unwrap_or(0);
    let want = longest.max(HEADER[PROMPT].len()).min(ROOMY_PROMPT);
    for c in GIVE_UP {
        if room(shown) >= want {
            break;
        }
        shown[c] = false;
    }
    // Back what fits again, the more useful first (a wide CREATED may have
    // had to go where OUT and ERR fit).
    for c in GIVE_UP.into_iter().rev() {
        if !shown[c] && room(shown) >= widths[c] + want {
            shown[c] = true;
        }
    }
    room(shown).max(1)
}

fn cells(index: usize, s: &Session, look: &Look) -> [String; COLUMNS] {
    let r = s.record.as_deref().ok();
    let dash = || "-".to_string();
    let created = s.created_at();
    [
        index.to_string(),
        s.id.to_string(),
        r.and_then(|r| r.pid).map_or_else(dash, |p| p.to_string()),
        r.map_or_else(dash, |r| r.kind.as_str().to_string()),
        status_text(s),
        human_size(s.log_bytes(Stream::Stdout)),
        human_size(s.log_bytes(Stream::Stderr)),
        match look.relative {
            Some(now) => ago(now, created),
            None => created.to_rfc3339_secs(),
        },
        r.and_then(run_time).unwrap_or_else(dash),
        r.and_then(tokens).unwrap_or_else(dash),
        // Session data: shown escaped, never interpreted by the terminal.
        ::cli::text::line(&r.map(prompt_cell).unwrap_or_default()),
    ]
}

/// How long an ended session ran.
fn run_time(r: &shared::Record) -> Option<String> {
    let (start, end) = (r.started_at.unwrap_or(r.created_at), r.ended_at?);
    let nanos = u64::try_from(end.as_nanos() - start.as_nanos()).ok()?;
    Some(shared::units::human_duration(Duration::from_nanos(nanos)))
}

/// The agent's tokens, input and output, in thousands past 10,000.
fn tokens(r: &shared::Record) -> Option<String> {
    let a = r.agent.as_ref()?;
    let total = a.input_tokens + a.output_tokens;
    match total {
        0 if r.kind != Kind::Exec => None,
        0..=9_999 => Some(total.to_string()),
        _ => Some(format!("{:.1}k", total as f64 / 1000.0)),
    }
}

/// `then` as people say it from `now`, as docker ps does: `12 seconds
/// ago`, `3 min ago`, `2 hours ago`, `5 days ago`.
fn ago(now: Timestamp, then: Timestamp) -> String {
    let secs = (now.as_nanos() - then.as_nanos()).max(0) / 1_000_000_000;
    let (n, unit) = match secs {
        0 => return "just now".into(),
        1..=59 => (secs, "second"),
        60..=3599 => (secs / 60, "min"),
        3600..=86_399 => (secs / 3600, "hour"),
        86_400..=1_209_599 => (secs / 86_400, "day"),
        1_209_600..=5_183_999 => (secs / 604_800, "week"),
        _ => (secs / 2_592_000, "month"),
    };
    let s = if n == 1 || unit == "min" { "" } else { "s" };
    format!("{n} {unit}{s} ago")
}

/// The PROMPT column: for a worktree session that ended, what its work
/// came to; then what the session was asked and, for an agent, its state
/// and what it said (see [`what_cell`]).
fn prompt_cell(r: &shared::Record) -> String {
    match r.worktree.as_ref().and_then(work_text) {
        Some(work) => format!("{work} · {}", what_cell(r)),
        None => what_cell(r),
    }
}

/// What a worktree session's work came to, once it ended: `+12 -3 in 4
/// files`, `no changes`, or `not committed: +12 -3 in 4 files`.
fn work_text(w: &Worktree) -> Option<String> {
    let stat = w.diffstat.filter(|d| d.files > 0);
    Some(match (w.status, stat) {
        (WorkStatus::Creating | WorkStatus::Active, _) => return None,
        (WorkStatus::Failed, Some(d)) => format!("not committed: {d}"),
        (WorkStatus::Failed, None) => "not committed".into(),
        (_, Some(d)) => d.to_string(),
        (_, None) => "no changes".into(),
    })
}

/// For an agent, its state and its last message (or error, or what it is
/// blocked on, or the prompt while it has said nothing yet), after the
/// session it continues; for a repl without a prompt, where it runs; for
/// others the prompt's first line or the command line.
fn what_cell(r: &shared::Record) -> String {
    let first_line = |s: &str| s.lines().next().unwrap_or("").to_string();
    let interactive = || {
        format!(
            "interactive, in {}",
            ::cli::text::line_bytes(r.cwd.as_bytes())
        )
    };
    if let Some(agent) = &r.agent {
        let text = match agent.state {
            AgentState::Failed => agent
                .last_error
                .as_deref()
                .or(agent.last_message.as_deref()),
            AgentState::Blocked => agent.blocked_message.as_deref(),
            _ => agent.last_message.as_deref(),
        }
        .map(first_line)
        .or(r.prompt.as_deref().map(first_line))
        .unwrap_or_else(|| match r.kind {
            Kind::Repl => interactive(),
            _ => shell_words(&r.argv),
        });
        let after = r
            .continues
            .as_deref()
            .map_or_else(String::new, |id| format!("after {id} · "));
        let state = match agent.state {
            AgentState::Blocked => "needs input",
            other => other.as_str(),
        };
        return format!("{after}{state}: {text}");
    }
    match &r.prompt {
        Some(p) => first_line(p),
        None if r.kind == Kind::Repl => interactive(),
        None => shell_words(&r.argv),
    }
}

/// `running`, `exited 0`, `killed SIGTERM`, `timed out`, `lost`…
pub fn status_text(s: &Session) -> String {
    let r = s.record.as_deref().ok();
    match s.status {
        Status::Exited if r.is_some_and(|r| r.timed_out) => "timed out".into(),
        Status::Exited => match r.map(|r| (&r.signal, r.exit_code)) {
            Some((Some(sig), _)) => format!("killed {sig}"),
            Some((None, Some(code))) => format!("exited {code}"),
            _ => "exited".into(),
        },
        other => other.as_str().into(),
    }
}

fn paint(text: &str, status: Status) -> String {
    let code = match status {
        Status::Queued | Status::Starting => "36",
        Status::Running => "32",
        Status::Exited if text == "exited 0" => return text.to_string(),
        Status::Exited => "33",
        Status::Failed | Status::Lost | Status::Corrupt => "31",
    };
    format!("\x1b[{code}m{text}\x1b[39m")
}

/// The command line as one string, quoting words that need it; bytes
/// that are not UTF-8 shown as `\xHH` (see `cli::text`).
fn shell_words(argv: &[OsString]) -> String {
    argv.iter()
        .map(|w| {
            let w = ::cli::text::line_bytes(w.as_bytes());
            if !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
            {
                w
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `s` cut to `max` terminal columns, the last one `…` when cut (wide
/// characters take two columns, combining marks none).
pub fn cut(s: &str, max: usize) -> String {
    if s.width() <= max {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > max.saturating_sub(1) {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_with_an_ellipsis() {
        assert_eq!(cut("hello world", 5), "hell…");
        assert_eq!(cut("hello", 5), "hello");
        assert_eq!(cut("héllo wörld", 6), "héllo…");
        // By columns: wide characters take two, combining marks none.
        assert_eq!(cut("漢字漢字漢字", 7), "漢字漢…");
        assert_eq!(cut("漢字漢字漢字", 6), "漢字…");
        assert_eq!(
            cut("e\u{301}e\u{301}e\u{301}e\u{301}", 3),
            "e\u{301}e\u{301}…"
        );
    }

    #[test]
    fn creation_times_read_as_docker_says_them() {
        let now = Timestamp(1_000_000_000_000_000_000);
        let at = |secs: i64| ago(now, Timestamp(now.0 - secs * 1_000_000_000));
        assert_eq!(at(0), "just now");
        assert_eq!(at(1), "1 second ago");
        assert_eq!(at(12), "12 seconds ago");
        assert_eq!(at(200), "3 min ago");
        assert_eq!(at(7200), "2 hours ago");
        assert_eq!(at(86_400 * 3), "3 days ago");
        assert_eq!(at(86_400 * 21), "3 weeks ago");
        assert_eq!(at(86_400 * 90), "3 months ago");
    }

    #[test]
    fn quotes_words_like_a_shell() {
        let argv = ["sh", "-c", "echo 'hi'; exit 3"].map(OsString::from);
        assert_eq!(shell_words(&argv), r"sh -c 'echo '\''hi'\''; exit 3'");
    }
}

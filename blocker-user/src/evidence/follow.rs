//! Helpers shared by the text sources (`kmsg`, `eve`).
//!
//! - [`tail`]: follows a file like `tail -F` (rotation, truncation, a file
//!   that does not exist yet).
//! - [`LineBuf`]: a bounded line splitter. Bytes go in as they are read,
//!   complete lines come out, and no line may grow the buffer past a limit,
//!   whatever the input (a writer that never sends a newline cannot make us
//!   allocate without bound).
//! - [`Throttle`]: decides which of many identical warnings get logged, so a
//!   flood of junk input cannot flood the log as well.

use std::{
    io::{self, SeekFrom},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::Duration,
};

use tokio::{
    fs::File,
    io::{AsyncReadExt, AsyncSeekExt},
};

/// One piece of output from [`LineBuf::push`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// A complete line, without its `\n` (and without a trailing `\r`).
    Complete(&'a [u8]),
    /// A line longer than the limit; its bytes were discarded up to and
    /// including its newline. Reported once per such line.
    TooLong,
}

/// Accumulates a partial last line between reads.
#[derive(Debug)]
pub(crate) struct LineBuf {
    buf: Vec<u8>,
    max: usize,
    /// Inside an overlong line (already reported): drop bytes until `\n`.
    discarding: bool,
    /// Inside a line fragment we chose not to report (we started reading in
    /// the middle of a line): drop bytes until `\n` without a report.
    skipping: bool,
}

impl LineBuf {
    /// `max` is the longest line (without its newline) that is passed on.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            max,
            discarding: false,
            skipping: false,
        }
    }

    /// Feeds `chunk`, calling `f` for every line it completes.
    pub(crate) fn push(&mut self, mut chunk: &[u8], mut f: impl FnMut(Line<'_>)) {
        while !chunk.is_empty() {
            let newline = chunk.iter().position(|&b| b == b'\n');
            if self.discarding || self.skipping {
                match newline {
                    Some(i) => {
                        self.discarding = false;
                        self.skipping = false;
                        chunk = &chunk[i + 1..];
                    }
                    None => return,
                }
                continue;
            }
            match newline {
                Some(i) => {
                    let (head, rest) = (&chunk[..i], &chunk[i + 1..]);
                    if self.buf.len() + head.len() > self.max {
                        self.buf.clear();
                        f(Line::TooLong);
                    } else if self.buf.is_empty() {
                        f(Line::Complete(trim_cr(head)));
                    } else {
                        self.buf.extend_from_slice(head);
                        f(Line::Complete(trim_cr(&self.buf)));
                        self.buf.clear();
                    }
                    chunk = rest;
                }
                None => {
                    if self.buf.len() + chunk.len() > self.max {
                        self.buf.clear();
                        self.discarding = true;
                        f(Line::TooLong);
                    } else {
                        self.buf.extend_from_slice(chunk);
                    }
                    return;
                }
            }
        }
    }

    /// Hands out the unterminated last line, if any (end of input, or the
    /// file is being left for its successor), and resets.
    pub(crate) fn finish(&mut self, f: impl FnOnce(Line<'_>)) {
        let had_partial = !self.buf.is_empty();
        self.discarding = false;
        self.skipping = false;
        if had_partial {
            f(Line::Complete(trim_cr(&self.buf)));
            self.buf.clear();
        }
    }

    /// Drops any buffered partial line without reporting it (the file was
    /// truncated: the rest of that line is gone).
    pub(crate) fn reset(&mut self) {
        self.buf.clear();
        self.discarding = false;
        self.skipping = false;
    }

    /// Silently drops input up to the next newline: used when reading starts
    /// in the middle of a line.
    pub(crate) fn skip_to_next_line(&mut self) {
        self.reset();
        self.skipping = true;
    }

    /// Bytes of the partial line held back.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Logs the first few occurrences of a condition, then every `every`-th.
#[derive(Debug)]
pub(crate) struct Throttle {
    seen: u64,
    first: u64,
    every: u64,
}

impl Throttle {
    pub(crate) const fn new(first: u64, every: u64) -> Self {
        Self {
            seen: 0,
            first,
            every: if every == 0 { 1 } else { every },
        }
    }

    /// Counts one occurrence; `Some(total so far)` when this one should be
    /// logged.
    pub(crate) fn hit(&mut self) -> Option<u64> {
        self.seen = self.seen.saturating_add(1);
        (self.seen <= self.first || self.seen.is_multiple_of(self.every)).then_some(self.seen)
    }
}

/// How [`tail`] runs.
#[derive(Clone, Debug)]
pub struct TailOptions {
    /// Read the file present at startup from its beginning. Off by default:
    /// old alerts are not fresh evidence. Files that appear later (created,
    /// or the successor after a rotation) are always read from the start.
    pub from_start: bool,
    /// How often to look for new data, rotation and truncation.
    pub poll_interval: Duration,
}

impl Default for TailOptions {
    fn default() -> Self {
        Self {
            from_start: false,
            poll_interval: Duration::from_millis(250),
        }
    }
}

/// Bytes read per `read()`.
const CHUNK: usize = 64 * 1024;

/// Reads per poll round before checking for rotation and shutdown again, so
/// a fast writer cannot starve those checks.
const READS_PER_ROUND: usize = 64;

/// The file being followed.
struct Current {
    file: File,
    /// (device, inode) of the file we opened: when the path names another
    /// inode, the file was rotated.
    id: (u64, u64),
    /// Bytes consumed so far; a file shorter than this was truncated.
    offset: u64,
}

/// Follows `path` like `tail -F`, by polling, handing every line to
/// `handle` until `closed()` says stop: it survives rotation by rename
/// (finishing the old file before switching to the new one), copytruncate,
/// and a file that does not exist yet. Never gives up on I/O errors: it
/// logs them (throttled) and tries again at the next poll. `what` names the
/// file in log lines ("eve.json").
pub async fn tail(
    path: PathBuf,
    what: &'static str,
    max_line: usize,
    opts: TailOptions,
    closed: impl Fn() -> bool,
    mut handle: impl FnMut(Line<'_>),
) {
    let mut lines = LineBuf::new(max_line);
    let mut buf = vec![0u8; CHUNK];
    let mut io_errors = Throttle::new(3, 100);
    let mut current: Option<Current> = None;
    let mut at_startup = true;
    let mut said_waiting = false;
    // A zero interval would spin.
    let poll = opts.poll_interval.max(Duration::from_millis(1));

    loop {
        if closed() {
            tracing::debug!(path = %path.display(), "alert channel closed; {what} follower stops");
            return;
        }
        let Some(cur) = current.as_mut() else {
            match open(&path, at_startup && !opts.from_start, &mut lines).await {
                Ok(cur) => {
                    tracing::info!(
                        path = %path.display(),
                        offset = cur.offset,
                        "following {what}"
                    );
                    current = Some(cur);
                    said_waiting = false;
                    at_startup = false;
                    events::note(&path, "opened");
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if !said_waiting {
                        tracing::info!(
                            path = %path.display(),
                            "{what} does not exist yet; waiting for it"
                        );
                        said_waiting = true;
                    }
                    events::note(&path, "absent");
                }
                Err(e) => {
                    if let Some(n) = io_errors.hit() {
                        tracing::warn!(
                            path = %path.display(),
                            error = %e,
                            times = n,
                            "cannot open {what}; retrying"
                        );
                    }
                }
            }
            // A file created after startup is new: read it all.
            at_startup = false;
            tokio::time::sleep(poll).await;
            continue;
        };

        let (read, more) = match read_available(cur, &mut buf, &mut lines, &mut handle).await {
            Ok(r) => r,
            Err(e) => {
                // Keep the descriptor and position: retrying the read later
                // neither loses nor repeats lines. Rotation and truncation
                // are still checked below.
                if let Some(n) = io_errors.hit() {
                    tracing::warn!(
                        path = %path.display(),
                        error = %e,
                        times = n,
                        "reading {what} failed; retrying"
                    );
                }
                (0, false)
            }
        };
        if more {
            continue;
        }

        // Truncated in place (copytruncate): start over at 0. The partial
        // line we held went with the old contents.
        if let Ok(meta) = cur.file.metadata().await
            && meta.len() < cur.offset
        {
            tracing::info!(
                path = %path.display(),
                size = meta.len(),
                offset = cur.offset,
                "{what} was truncated; reading from the start"
            );
            lines.reset();
            cur.offset = 0;
            if let Err(e) = cur.file.seek(SeekFrom::Start(0)).await {
                tracing::warn!(
                    path = %path.display(),
                    error = %e,
                    "cannot rewind {what}; reopening"
                );
                current = None;
            }
            events::note(&path, "rewound");
            continue;
        }

        // Rotated: the path now names another file. Finish the old one (the
        // writer may have appended since our last read), then switch.
        match tokio::fs::metadata(&path).await {
            Ok(meta) if (meta.dev(), meta.ino()) != cur.id => {
                while let Ok((_, true)) =
                    read_available(cur, &mut buf, &mut lines, &mut handle).await
                {}
                lines.finish(&mut handle);
                tracing::info!(
                    path = %path.display(),
                    "{what} was rotated; following the new file"
                );
                current = None;
                events::note(&path, "rotated");
                continue;
            }
            // Renamed away with no successor yet, or unchanged: keep
            // reading the file we have.
            _ => {}
        }

        if read == 0 {
            tokio::time::sleep(poll).await;
        }
    }
}

/// Opens `path`; at its end when `at_end`, skipping the partial line that
/// may be there (we do not know where it started).
async fn open(path: &Path, at_end: bool, lines: &mut LineBuf) -> io::Result<Current> {
    let mut file = File::open(path).await?;
    let meta = file.metadata().await?;
    lines.reset();
    let mut offset = 0;
    if at_end && meta.len() > 0 {
        offset = meta.len();
        file.seek(SeekFrom::Start(offset - 1)).await?;
        let mut last = [0u8; 1];
        file.read_exact(&mut last).await?;
        if last[0] != b'\n' {
            lines.skip_to_next_line();
        }
    }
    Ok(Current {
        file,
        id: (meta.dev(), meta.ino()),
        offset,
    })
}

/// Reads what is there (up to [`READS_PER_ROUND`] chunks): (bytes read,
/// whether more may be waiting).
async fn read_available(
    cur: &mut Current,
    buf: &mut [u8],
    lines: &mut LineBuf,
    handle: &mut impl FnMut(Line<'_>),
) -> io::Result<(u64, bool)> {
    let mut total = 0;
    for _ in 0..READS_PER_ROUND {
        let n = cur.file.read(buf).await?;
        if n == 0 {
            return Ok((total, false));
        }
        cur.offset += n as u64;
        total += n as u64;
        lines.push(&buf[..n], &mut *handle);
    }
    Ok((total, true))
}

/// What the follower did, recorded in test builds only so that tests can
/// wait for a state (the file is open, its absence was seen) instead of
/// sleeping and hoping.
pub(crate) mod events {
    #[cfg(not(test))]
    pub(crate) fn note(_path: &std::path::Path, _event: &'static str) {}

    #[cfg(test)]
    pub(crate) use recorded::{note, seen};

    #[cfg(test)]
    mod recorded {
        use std::{
            collections::HashMap,
            path::{Path, PathBuf},
            sync::Mutex,
        };

        static EVENTS: Mutex<Option<HashMap<(PathBuf, &'static str), u64>>> = Mutex::new(None);

        pub(crate) fn note(path: &Path, event: &'static str) {
            if let Ok(mut events) = EVENTS.lock() {
                *events
                    .get_or_insert_with(HashMap::new)
                    .entry((path.to_path_buf(), event))
                    .or_default() += 1;
            }
        }

        /// How many times `event` happened for `path`.
        pub(crate) fn seen(path: &Path, event: &'static str) -> u64 {
            EVENTS
                .lock()
                .ok()
                .and_then(|e| e.as_ref()?.get(&(path.to_path_buf(), event)).copied())
                .unwrap_or(0)
        }
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(lb: &mut LineBuf, chunk: &[u8]) -> Vec<Option<Vec<u8>>> {
        let mut out = Vec::new();
        lb.push(chunk, |l| {
            out.push(match l {
                Line::Complete(b) => Some(b.to_vec()),
                Line::TooLong => None,
            })
        });
        out
    }

    #[test]
    fn splits_and_buffers_partial_lines() {
        let mut lb = LineBuf::new(100);
        assert_eq!(
            collect(&mut lb, b"a\nbc\r\nde"),
            vec![Some(b"a".to_vec()), Some(b"bc".to_vec())]
        );
        assert_eq!(lb.pending(), 2);
        assert_eq!(collect(&mut lb, b"f"), Vec::<Option<Vec<u8>>>::new());
        assert_eq!(
            collect(&mut lb, b"g\n\n"),
            vec![Some(b"defg".to_vec()), Some(b"".to_vec())]
        );
        assert_eq!(lb.pending(), 0);
        let mut last = None;
        lb.push(b"tail", |_| {});
        lb.finish(|l| last = Some(format!("{l:?}")));
        assert_eq!(last.as_deref(), Some("Complete([116, 97, 105, 108])"));
    }

    #[test]
    fn bounds_overlong_lines() {
        let mut lb = LineBuf::new(4);
        // Overlong inside one chunk, then a normal line.
        assert_eq!(
            collect(&mut lb, b"123456\nok\n"),
            vec![None, Some(b"ok".to_vec())]
        );
        // Overlong across chunks: reported once, memory stays bounded.
        assert_eq!(collect(&mut lb, b"abc"), Vec::<Option<Vec<u8>>>::new());
        assert_eq!(collect(&mut lb, b"defgh"), vec![None]);
        assert_eq!(lb.pending(), 0);
        for _ in 0..100 {
            assert!(collect(&mut lb, &[b'x'; 1000]).is_empty());
            assert_eq!(lb.pending(), 0);
        }
        assert_eq!(collect(&mut lb, b"zz\nyes\n"), vec![Some(b"yes".to_vec())]);
        // Exactly at the limit passes.
        assert_eq!(collect(&mut lb, b"1234\n"), vec![Some(b"1234".to_vec())]);
        assert_eq!(collect(&mut lb, b"12"), Vec::<Option<Vec<u8>>>::new());
        assert_eq!(collect(&mut lb, b"345\n"), vec![None]);
    }

    #[test]
    fn throttle_logs_first_then_every_nth() {
        let mut t = Throttle::new(3, 10);
        let logged: Vec<u64> = (0..35).filter_map(|_| t.hit()).collect();
        assert_eq!(logged, vec![1, 2, 3, 10, 20, 30]);
    }

    #[test]
    fn skips_a_leading_fragment_silently() {
        let mut lb = LineBuf::new(100);
        lb.skip_to_next_line();
        assert!(collect(&mut lb, b"tail of an old line").is_empty());
        assert_eq!(
            collect(&mut lb, b" more\nnext\n"),
            vec![Some(b"next".to_vec())]
        );
    }
}

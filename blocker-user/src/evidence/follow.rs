//! Helpers shared by the text sources (`kmsg`, `eve`).
//!
//! - [`LineBuf`]: a bounded line splitter. Bytes go in as they are read,
//!   complete lines come out, and no line may grow the buffer past a limit,
//!   whatever the input (a writer that never sends a newline cannot make us
//!   allocate without bound).
//! - [`Throttle`]: decides which of many identical warnings get logged, so a
//!   flood of junk input cannot flood the log as well.

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

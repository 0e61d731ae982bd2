//! The kernel log (`/dev/kmsg`): the TCP "treason" / zero-window message in
//! every spelling the kernel has used, turned into [`Alert`]s.
//!
//! The message comes from `tcp_retransmit_timer()` in
//! `net/ipv4/tcp_timer.c`, when the retransmission timer fires while the peer
//! advertises a zero window (`!tp->snd_wnd`) on a live, established socket.
//! Its format arguments have always been the peer address, the peer port
//! (`ntohs(inet->dport)`, later `inet->inet_dport`), our local port
//! (`inet->num`, later `inet->inet_num`, already host order), then
//! `tp->snd_una` and `tp->snd_nxt`. The spellings, verified against the
//! kernel sources:
//!
//! 1. [`Spelling::TreasonUncloaked`], up to at least v2.6.27 (checked in
//!    2.6.1x, 2.6.24 and 2.6.27.y trees), IPv4 only, printed with
//!    `printk(KERN_DEBUG ...)` under `net_ratelimit()`, later
//!    `LIMIT_NETDEBUG(KERN_DEBUG ...)`:
//!    `"TCP: Treason uncloaked! Peer %u.%u.%u.%u:%u/%u shrinks window %u:%u. Repaired.\n"`
//!    with `NIPQUAD(inet->daddr)`.
//! 2. [`Spelling::UnexpectedlyShrunk`], from the 2.6.2x/2.6.3x series (the
//!    rewording came with an IPv6 branch and `%pI4`/`%pI6`; trees of that
//!    era still use `inet->daddr`), via `LIMIT_NETDEBUG(KERN_DEBUG ...)`:
//!    `"TCP: Peer %pI4:%u/%u unexpectedly shrunk window %u:%u (repaired)\n"`
//!    and the same with `%pI6` (the exact commit was not pinned down; the
//!    wording is in 2.6.32-era trees). When `LIMIT_NETDEBUG` was replaced by
//!    `net_dbg_ratelimited()` (3.x; commit not pinned down either) the
//!    `"TCP: "` went away, because `tcp_timer.c` defines no `pr_fmt`:
//!    `"Peer %pI4:%u/%u unexpectedly shrunk window %u:%u (repaired)\n"`
//!    (torvalds/linux `net/ipv4/tcp_timer.c` up to v6.5).
//! 3. [`Spelling::ProbingZeroWindow`], since v6.6: commit "net: tcp: refactor
//!    the dbg message in tcp_retransmit_timer()" (Menglong Dong, Aug 2023):
//!    `"Probing zero-window on %pI4:%u/%u, seq=%u:%u, recv %ums ago, lasting %ums\n"`
//!    and the same with `%pI6`; unchanged by the later `tcp_usec_ts` work.
//!
//! `%pI6` prints the full, uncompressed form (`2001:0db8:0000:...:0001`), so
//! the port follows the last colon. Since the `net_dbg_ratelimited()`
//! conversion the message is a `pr_debug()`: compiled out unless dynamic
//! debug enables it, which may also prepend decorations
//! (`lib/dynamic_debug.c`, `__dynamic_emit_prefix()`: `"<intr> "` or
//! `"[pid] "`, then `"module:"`, `"function:"`, `"file:"`, `"line:"` and one
//! space); those are skipped. Out-of-tree MPTCP kernels print an `"MPTCP: "`
//! variant of spelling 2, which the same rule accepts.
//!
//! Records read from `/dev/kmsg` (`"prefix,seq,usec,flags;text"`) whose
//! syslog facility is not 0 (kernel) are ignored: `devkmsg_write()` in
//! `kernel/printk/printk.c` forces `LOG_USER` on everything written from
//! userspace "to be able to reliably distinguish kernel-generated messages
//! from userspace-injected ones", so a local user cannot forge evidence.

use std::{
    fs::{File, OpenOptions},
    io::{self, Read, Seek, SeekFrom},
    net::IpAddr,
    os::unix::fs::{FileTypeExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use super::follow::{Line, LineBuf, Throttle};
use crate::{
    addr, clock,
    evidence::alert::{self, Alert, AlertKind, AlertSource, PipelineCounters},
};

/// Longest kernel log line looked at. The kernel's own records are far
/// shorter (`PRINTKRB_RECORD_MAX` is 1 KiB of text, which `/dev/kmsg`
/// escaping can at most quadruple); anything longer is junk.
pub const MAX_LINE: usize = 16 * 1024;

/// Read buffer for one `/dev/kmsg` record: `read()` fails with `EINVAL` when
/// the record does not fit, and a record is at most `CONSOLE_EXT_LOG_MAX`
/// (8 KiB) plus its dictionary.
const RECORD_BUF: usize = 32 * 1024;

/// The spellings of the message (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Spelling {
    /// `TCP: Treason uncloaked! Peer A:p/l shrinks window x:y. Repaired.`
    TreasonUncloaked,
    /// `[TCP: ]Peer A:p/l unexpectedly shrunk window x:y (repaired)`
    UnexpectedlyShrunk,
    /// `Probing zero-window on A:p/l, seq=x:y, recv Nms ago, lasting Mms`
    ProbingZeroWindow,
}

impl Spelling {
    /// The alert signature for this spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TreasonUncloaked => "treason-uncloaked",
            Self::UnexpectedlyShrunk => "unexpectedly-shrunk-window",
            Self::ProbingZeroWindow => "probing-zero-window",
        }
    }
}

/// The facts one treason message states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreasonMessage {
    pub spelling: Spelling,
    /// The peer (canonical: IPv4-mapped IPv6 is unmapped).
    pub peer: IpAddr,
    pub peer_port: u16,
    pub local_port: u16,
    pub snd_una: u32,
    pub snd_nxt: u32,
}

impl TreasonMessage {
    pub fn into_alert(self, observed_ns: u64) -> Alert {
        Alert {
            source: AlertSource::Kmsg,
            kind: AlertKind::KernelLog,
            peer: self.peer,
            peer_port: Some(self.peer_port),
            local: None,
            local_port: Some(self.local_port),
            observed_ns,
            signature: self.spelling.as_str().to_string(),
            count: 1,
            tcp: None,
            ids: None,
        }
    }
}

/// Why a line could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("not valid UTF-8")]
    NotUtf8,
    #[error("contains a NUL byte")]
    Nul,
    #[error("longer than {MAX_LINE} bytes")]
    TooLong,
    #[error("broken /dev/kmsg record header")]
    BadHeader,
    #[error("names the {} message but does not match its format", .0.as_str())]
    Unparsable(Spelling),
}

/// What one line of kernel log is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The treason / zero-window message.
    Treason(TreasonMessage),
    /// Some other message, or one injected from userspace.
    Other,
    /// A blank line or a `/dev/kmsg` dictionary continuation line
    /// (`" SUBSYSTEM=net"`): not a message.
    Filler,
    Malformed(Malformed),
}

/// Classifies one line: a raw `/dev/kmsg` record (`"6,1234,5678901,-;TCP:
/// ..."`), `dmesg` output (`"[ 1234.567890] TCP: ..."`, optionally with a
/// `"<6>"` syslog prefix as `dmesg -r` prints it and a `"[T123]"` caller
/// id), or a bare message.
pub fn classify(line: &[u8]) -> Parsed {
    if line.len() > MAX_LINE {
        return Parsed::Malformed(Malformed::TooLong);
    }
    if line.contains(&0) {
        return Parsed::Malformed(Malformed::Nul);
    }
    let Ok(line) = std::str::from_utf8(line) else {
        return Parsed::Malformed(Malformed::NotUtf8);
    };
    let line = line.trim_end_matches(['\n', '\r']);
    if line.trim().is_empty() || line.starts_with(' ') {
        return Parsed::Filler;
    }
    let (facility, message) = match split_prefix(line) {
        Ok(split) => split,
        Err(why) => return Parsed::Malformed(why),
    };
    if facility.is_some_and(|f| f != 0) {
        return Parsed::Other;
    }
    match parse_message(message) {
        Ok(Some(m)) => Parsed::Treason(m),
        Ok(None) => Parsed::Other,
        Err(spelling) => Parsed::Malformed(Malformed::Unparsable(spelling)),
    }
}

/// The alert a kernel log line stands for, if it is the treason message.
pub fn parse_line(line: &str) -> Option<Alert> {
    match classify(line.as_bytes()) {
        Parsed::Treason(m) => Some(m.into_alert(clock::boottime_ns())),
        _ => None,
    }
}

/// Splits off the record header or dmesg prefix: `(syslog facility if the
/// line states one, message text)`.
fn split_prefix(line: &str) -> Result<(Option<u32>, &str), Malformed> {
    // Raw /dev/kmsg record: "prefix,seq,usec,flags[,more...];text". A line
    // that opens with "digits," is one, or broken; other lines that start
    // with a digit are bare messages ("8021q: ...").
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && line.as_bytes().get(digits) == Some(&b',') {
        let (header, text) = line.split_once(';').ok_or(Malformed::BadHeader)?;
        let fields: Vec<&str> = header.split(',').collect();
        if fields.len() < 4 || !fields[..3].iter().all(|f| is_number(f, 20)) || fields[3].is_empty()
        {
            return Err(Malformed::BadHeader);
        }
        let prefix: u64 = fields[0].parse().map_err(|_| Malformed::BadHeader)?;
        let facility = u32::try_from(prefix >> 3).map_err(|_| Malformed::BadHeader)?;
        return Ok((Some(facility), text));
    }

    let mut rest = line;
    let mut facility = None;
    // "<6>" as `dmesg -r` prints it.
    if let Some(after) = rest.strip_prefix('<')
        && let Some((num, tail)) = after.split_once('>')
        && is_number(num, 10)
    {
        let prefix: u64 = num.parse().map_err(|_| Malformed::BadHeader)?;
        facility = Some(u32::try_from(prefix >> 3).map_err(|_| Malformed::BadHeader)?);
        rest = tail;
    }
    // "[ 1234.567890] " timestamp, then an optional "[    T1] " caller id
    // (CONFIG_PRINTK_CALLER).
    if let Some(tail) = strip_bracket(rest, |s| {
        let s = s.trim_start_matches(' ');
        s.split_once('.')
            .is_some_and(|(a, b)| is_number(a, 20) && is_number(b, 20))
    }) {
        rest = tail;
        if let Some(tail) = strip_bracket(rest, |s| {
            let s = s.trim_start_matches(' ');
            s.strip_prefix(['T', 'C']).is_some_and(|n| is_number(n, 20))
        }) {
            rest = tail;
        }
    }
    Ok((facility, rest))
}

/// `"[inner] rest"` → `rest` when `ok(inner)`.
fn strip_bracket(s: &str, ok: impl Fn(&str) -> bool) -> Option<&str> {
    let inner_and_rest = s.strip_prefix('[')?;
    let (inner, rest) = inner_and_rest.split_once(']')?;
    if !ok(inner) {
        return None;
    }
    Some(rest.strip_prefix(' ').unwrap_or(rest))
}

fn is_number(s: &str, max_digits: usize) -> bool {
    !s.is_empty() && s.len() <= max_digits && s.bytes().all(|b| b.is_ascii_digit())
}

/// Phrases that identify each spelling even when the rest of the line is
/// damaged (truncated, reformatted): such lines are malformed, not ignored,
/// so a future rewording shows up in the counters.
const ANCHORS: [(&str, Spelling); 3] = [
    ("Treason uncloaked", Spelling::TreasonUncloaked),
    ("unexpectedly shrunk window", Spelling::UnexpectedlyShrunk),
    ("Probing zero-window on", Spelling::ProbingZeroWindow),
];

/// Parses a message text (no record header or timestamp). `Ok(None)` for
/// other messages, `Err` for a damaged treason message.
pub fn parse_message(message: &str) -> Result<Option<TreasonMessage>, Spelling> {
    let body = strip_decoration(message).trim_end();
    let parsed = if let Some(rest) = body.strip_prefix("Treason uncloaked! Peer ") {
        parse_treason(rest)
    } else if let Some(rest) = body.strip_prefix("Peer ") {
        parse_shrunk(rest)
    } else if let Some(rest) = body.strip_prefix("Probing zero-window on ") {
        parse_probing(rest)
    } else {
        None
    };
    if let Some(m) = parsed {
        return Ok(Some(m));
    }
    match ANCHORS.iter().find(|(phrase, _)| body.contains(phrase)) {
        Some(&(_, spelling)) => Err(spelling),
        None => Ok(None),
    }
}

/// Skips a subsystem prefix (`"TCP: "`, `"MPTCP: "`) and dynamic debug
/// decorations (`"<intr> tcp_retransmit_timer:540: "`).
fn strip_decoration(message: &str) -> &str {
    // Kernel decorations fit in its 64/128-byte prefix buffer; do not scan
    // further than that into attacker-sized input.
    const LIMIT: usize = 256;
    let mut s = message;
    if let Some(rest) = s.strip_prefix("<intr> ") {
        s = rest;
    } else if let Some(rest) = strip_bracket(s, |inner| is_number(inner, 10)) {
        s = rest;
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut end = None;
    while i < bytes.len().min(LIMIT) {
        let start = i;
        while i < bytes.len().min(LIMIT)
            && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'.' | b'-' | b'/'))
        {
            i += 1;
        }
        if i > start && bytes.get(i) == Some(&b':') {
            i += 1;
            end = Some(i);
        } else {
            break;
        }
    }
    match end {
        Some(e) if bytes.get(e) == Some(&b' ') => &s[e + 1..],
        _ => s,
    }
}

/// `"A:p/l shrinks window x:y. Repaired."`
fn parse_treason(rest: &str) -> Option<TreasonMessage> {
    let mut c = Cursor(rest);
    let (peer, peer_port, local_port) = c.endpoint(' ')?;
    c.lit(" shrinks window ")?;
    let snd_una = c.u32()?;
    c.lit(":")?;
    let snd_nxt = c.u32()?;
    c.lit(". Repaired.")?;
    c.end()?;
    Some(TreasonMessage {
        spelling: Spelling::TreasonUncloaked,
        peer,
        peer_port,
        local_port,
        snd_una,
        snd_nxt,
    })
}

/// `"A:p/l unexpectedly shrunk window x:y (repaired)"`
fn parse_shrunk(rest: &str) -> Option<TreasonMessage> {
    let mut c = Cursor(rest);
    let (peer, peer_port, local_port) = c.endpoint(' ')?;
    c.lit(" unexpectedly shrunk window ")?;
    let snd_una = c.u32()?;
    c.lit(":")?;
    let snd_nxt = c.u32()?;
    c.lit(" (repaired)")?;
    c.end()?;
    Some(TreasonMessage {
        spelling: Spelling::UnexpectedlyShrunk,
        peer,
        peer_port,
        local_port,
        snd_una,
        snd_nxt,
    })
}

/// `"A:p/l, seq=x:y, recv Nms ago, lasting Mms"`
fn parse_probing(rest: &str) -> Option<TreasonMessage> {
    let mut c = Cursor(rest);
    let (peer, peer_port, local_port) = c.endpoint(',')?;
    c.lit(", seq=")?;
    let snd_una = c.u32()?;
    c.lit(":")?;
    let snd_nxt = c.u32()?;
    c.lit(", recv ")?;
    c.u32()?;
    c.lit("ms ago, lasting ")?;
    c.u32()?;
    c.lit("ms")?;
    c.end()?;
    Some(TreasonMessage {
        spelling: Spelling::ProbingZeroWindow,
        peer,
        peer_port,
        local_port,
        snd_una,
        snd_nxt,
    })
}

/// A strict left-to-right matcher over one message.
struct Cursor<'a>(&'a str);

impl Cursor<'_> {
    fn lit(&mut self, s: &str) -> Option<()> {
        self.0 = self.0.strip_prefix(s)?;
        Some(())
    }

    fn end(&self) -> Option<()> {
        self.0.is_empty().then_some(())
    }

    fn digits(&mut self, max: usize) -> Option<&str> {
        let n = self.0.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 || n > max {
            return None;
        }
        let (d, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(d)
    }

    fn u32(&mut self) -> Option<u32> {
        self.digits(10)?.parse().ok()
    }

    fn u16(&mut self) -> Option<u16> {
        self.digits(5)?.parse().ok()
    }

    /// `"%pI4:%u/%u"` or `"%pI6:%u/%u"` up to `stop`: (peer, peer port,
    /// local port). The peer port follows the last colon of the address
    /// part, which also covers `%pI6`'s colons.
    fn endpoint(&mut self, stop: char) -> Option<(IpAddr, u16, u16)> {
        let len = self.0.find(stop)?;
        let (token, rest) = self.0.split_at(len);
        let (addr_port, local) = token.split_once('/')?;
        let (addr, port) = addr_port.rsplit_once(':')?;
        // Only the characters the kernel prints: no brackets, zone ids or
        // spaces that a lenient parser might accept.
        if addr.is_empty()
            || !addr
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':')
        {
            return None;
        }
        let peer: IpAddr = addr.parse().ok()?;
        let mut p = Cursor(port);
        let peer_port = p.u16()?;
        p.end()?;
        let mut l = Cursor(local);
        let local_port = l.u16()?;
        l.end()?;
        self.0 = rest;
        Some((addr::canonical(peer), peer_port, local_port))
    }
}

/// How the reader runs.
#[derive(Clone, Debug)]
pub struct KmsgOptions {
    /// Read the whole ring buffer (or file) from the start. Off by default:
    /// `/dev/kmsg` is positioned at its end (`SEEK_END`) so that messages
    /// from before the daemon started are not replayed as fresh evidence.
    pub from_start: bool,
    /// How often a reader waiting for new records checks whether it should
    /// stop.
    pub poll_interval: Duration,
    /// Incremented on every `EPIPE`: the kernel overwrote records before we
    /// read them (we fell behind a flood). Shared so that status output can
    /// show it.
    pub overwritten: Arc<AtomicU64>,
}

impl Default for KmsgOptions {
    fn default() -> Self {
        Self {
            from_start: false,
            poll_interval: Duration::from_millis(200),
            overwritten: Arc::default(),
        }
    }
}

/// Why the reader stopped.
#[derive(Debug, thiserror::Error)]
pub enum KmsgError {
    #[error(
        "cannot open {path}: {source} (reading /dev/kmsg needs root or CAP_SYSLOG when kernel.dmesg_restrict=1)"
    )]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot seek to the end of {path}: {source}")]
    Seek { path: PathBuf, source: io::Error },
    #[error("reading {path} failed: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("the kernel log reader thread failed: {0}")]
    Thread(#[from] tokio::task::JoinError),
}

/// Reads the kernel log at `path` and delivers an [`Alert`] for every
/// treason message.
///
/// `path` is normally `/dev/kmsg`, where each `read()` returns exactly one
/// record, waiting for the next one; the reader then runs until `tx` is
/// closed or this future is dropped. A regular file is read one line per
/// record and the reader returns at its end (tests, replaying a saved log).
/// Unrelated lines count as `ignored`, undecodable ones as `malformed`.
pub async fn run(
    path: PathBuf,
    tx: impl Into<alert::AlertTx>,
    counters: Arc<PipelineCounters>,
    opts: KmsgOptions,
) -> Result<(), KmsgError> {
    let tx: alert::AlertTx = tx.into();
    let stop = Arc::new(AtomicBool::new(false));
    // The blocking thread cannot be cancelled: tell it to stop when this
    // future goes away, so daemon shutdown does not wait on it.
    let _stop_on_drop = StopOnDrop(Arc::clone(&stop));
    let task =
        tokio::task::spawn_blocking(move || read_blocking(&path, &tx, &counters, &opts, &stop));
    match task.await {
        Ok(result) => result,
        Err(e) => Err(KmsgError::Thread(e)),
    }
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn read_blocking(
    path: &Path,
    tx: &alert::AlertTx,
    counters: &PipelineCounters,
    opts: &KmsgOptions,
    stop: &AtomicBool,
) -> Result<(), KmsgError> {
    // Non-blocking, so that waiting happens in poll() with a timeout and the
    // thread notices when it should stop.
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| KmsgError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let device = file
        .metadata()
        .map(|m| m.file_type().is_char_device())
        .unwrap_or(false);
    if !opts.from_start {
        // /dev/kmsg: SEEK_END moves to the record after the newest one
        // (devkmsg_llseek); a regular file simply goes to its end.
        file.seek(SeekFrom::End(0))
            .map_err(|source| KmsgError::Seek {
                path: path.to_path_buf(),
                source,
            })?;
    }
    tracing::info!(
        path = %path.display(),
        device,
        from_start = opts.from_start,
        "reading the kernel log"
    );

    let mut buf = vec![0u8; RECORD_BUF];
    let mut lines = LineBuf::new(MAX_LINE);
    let mut throttle = Throttle::new(5, 1000);
    let mut handle = |line: Line<'_>| handle_line(line, tx, counters, &mut throttle);
    loop {
        if stop.load(Ordering::Relaxed) || tx.is_closed() {
            return Ok(());
        }
        match file.read(&mut buf) {
            Ok(0) if !device => {
                lines.finish(&mut handle);
                tracing::info!(path = %path.display(), "end of the kernel log file");
                return Ok(());
            }
            Ok(0) => wait_readable(&file, opts.poll_interval),
            Ok(n) => {
                lines.push(&buf[..n], &mut handle);
                if device {
                    // One read is one whole record; never carry a piece of
                    // it over into the next.
                    lines.finish(&mut handle);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_readable(&file, opts.poll_interval);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {
                // The records we were about to read were overwritten; the
                // next read continues with the oldest one still there.
                let lost = opts.overwritten.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    path = %path.display(),
                    times = lost,
                    "kernel log records were overwritten before they were read"
                );
            }
            Err(source) => {
                return Err(KmsgError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
    }
}

fn handle_line(
    line: Line<'_>,
    tx: &alert::AlertTx,
    counters: &PipelineCounters,
    throttle: &mut Throttle,
) {
    let why = match line {
        Line::TooLong => Malformed::TooLong,
        Line::Complete(bytes) => match classify(bytes) {
            Parsed::Treason(m) => {
                tracing::debug!(peer = %m.peer, spelling = m.spelling.as_str(), "treason message");
                alert::deliver(tx, m.into_alert(clock::boottime_ns()), counters);
                return;
            }
            Parsed::Other => {
                counters.ignored.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Parsed::Filler => return,
            Parsed::Malformed(why) => why,
        },
    };
    counters.malformed.fetch_add(1, Ordering::Relaxed);
    if let Some(total) = throttle.hit() {
        tracing::warn!(reason = %why, total, "malformed kernel log line");
    }
}

/// Waits until `file` is readable or `timeout` passes.
fn wait_readable(file: &File, timeout: Duration) {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let timeout = Timespec::try_from(timeout).unwrap_or(Timespec {
        tv_sec: i64::MAX,
        tv_nsec: 0,
    });
    // The result does not matter: the caller reads again either way.
    let _ = poll(&mut [PollFd::new(file, PollFlags::IN)], Some(&timeout));
}

#[cfg(test)]
mod tests {
    use std::{io::Write, net::Ipv6Addr};

    use tokio::sync::mpsc;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn treason(line: &str) -> TreasonMessage {
        match classify(line.as_bytes()) {
            Parsed::Treason(m) => m,
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    /// The seed's four sample lines, exactly.
    #[test]
    fn seed_sample_lines() {
        let seed = [
            (
                "TCP: Treason uncloaked! Peer 117.79.83.112:4638/8080 shrinks window 3207520931:3207522811. Repaired.",
                "117.79.83.112",
                4638,
                3207520931,
                3207522811,
            ),
            (
                "TCP: Treason uncloaked! Peer 218.14.17.182:4771/8080 shrinks window 2946511037:2946513358. Repaired.",
                "218.14.17.182",
                4771,
                2946511037,
                2946513358,
            ),
            (
                "TCP: Treason uncloaked! Peer 218.14.17.182:4771/8080 shrinks window 2946511037:2946513358. Repaired.",
                "218.14.17.182",
                4771,
                2946511037,
                2946513358,
            ),
            (
                "TCP: Treason uncloaked! Peer 218.14.17.182:4771/8080 shrinks window 2946511037:2946513358. Repaired.",
                "218.14.17.182",
                4771,
                2946511037,
                2946513358,
            ),
        ];
        for (line, peer, port, una, nxt) in seed {
            let a = parse_line(line).unwrap_or_else(|| panic!("{line}"));
            assert_eq!(a.source, AlertSource::Kmsg);
            assert_eq!(a.kind, AlertKind::KernelLog);
            assert_eq!(a.peer, ip(peer));
            assert_eq!(a.peer_port, Some(port));
            assert_eq!(a.local, None);
            assert_eq!(a.local_port, Some(8080));
            assert_eq!(a.signature, "treason-uncloaked");
            assert_eq!((a.count, a.tcp, a.ids), (1, None, None));
            assert!(a.observed_ns > 0);
            let m = treason(line);
            assert_eq!((m.snd_una, m.snd_nxt), (una, nxt));
        }
    }

    /// Each spelling as the kernel formats it, for IPv4 and IPv6 (`%pI6`
    /// is uncompressed), in every line form.
    #[test]
    fn every_spelling_family_and_form() {
        let v6 = "2001:0db8:0000:0000:0000:0000:0000:0042";
        let cases: Vec<(Spelling, String, &str)> = vec![
            (
                Spelling::TreasonUncloaked,
                "TCP: Treason uncloaked! Peer 198.18.0.2:40000/8080 shrinks window 100:200. Repaired."
                    .into(),
                "198.18.0.2",
            ),
            (
                Spelling::TreasonUncloaked,
                format!(
                    "TCP: Treason uncloaked! Peer {v6}:40000/8080 shrinks window 100:200. Repaired."
                ),
                "2001:db8::42",
            ),
            (
                Spelling::UnexpectedlyShrunk,
                "TCP: Peer 198.18.0.2:40000/8080 unexpectedly shrunk window 100:200 (repaired)".into(),
                "198.18.0.2",
            ),
            (
                Spelling::UnexpectedlyShrunk,
                format!("TCP: Peer {v6}:40000/8080 unexpectedly shrunk window 100:200 (repaired)"),
                "2001:db8::42",
            ),
            (
                Spelling::UnexpectedlyShrunk,
                "Peer 198.18.0.2:40000/8080 unexpectedly shrunk window 100:200 (repaired)".into(),
                "198.18.0.2",
            ),
            (
                Spelling::UnexpectedlyShrunk,
                format!("Peer {v6}:40000/8080 unexpectedly shrunk window 100:200 (repaired)"),
                "2001:db8::42",
            ),
            (
                Spelling::ProbingZeroWindow,
                "Probing zero-window on 198.18.0.2:40000/8080, seq=100:200, recv 209ms ago, lasting 209ms"
                    .into(),
                "198.18.0.2",
            ),
            (
                Spelling::ProbingZeroWindow,
                format!(
                    "Probing zero-window on {v6}:40000/8080, seq=100:200, recv 812ms ago, lasting 1224ms"
                ),
                "2001:db8::42",
            ),
        ];
        for (spelling, msg, peer) in cases {
            let forms = [
                msg.to_string(),
                format!("{msg}\n"),
                format!("7,1234,5678901,-;{msg}"),
                format!("7,1234,5678901,-,caller=C1;{msg}\n"),
                format!("[ 1234.567890] {msg}"),
                format!("[5678901.123456] {msg}"),
                format!("<7>[   12.000001] {msg}"),
                format!("[   12.000001] [    C1] {msg}"),
            ];
            for line in &forms {
                let m = treason(line);
                assert_eq!(m.spelling, spelling, "{line}");
                assert_eq!(m.peer, ip(peer), "{line}");
                assert_eq!((m.peer_port, m.local_port), (40000, 8080), "{line}");
                assert_eq!((m.snd_una, m.snd_nxt), (100, 200), "{line}");
                let a = parse_line(line).unwrap();
                assert_eq!(a.signature, spelling.as_str());
            }
        }
    }

    /// The example lines of the v6.6 commit message itself (loopback).
    #[test]
    fn commit_message_examples() {
        let m = treason(
            "Probing zero-window on 127.0.0.1:9999/46946, seq=3737778959:3737791503, recv 404ms ago, lasting 408ms",
        );
        assert_eq!(
            (m.peer, m.peer_port, m.local_port),
            (ip("127.0.0.1"), 9999, 46946)
        );
    }

    #[test]
    fn ipv4_mapped_peers_are_unmapped() {
        let m = treason(
            "Peer 0000:0000:0000:0000:0000:ffff:c612:0009:443/8080 unexpectedly shrunk window 1:2 (repaired)",
        );
        assert_eq!(m.peer, ip("198.18.0.9"));
        let m = treason(
            "Probing zero-window on 0000:0000:0000:0000:0000:0000:0000:0001:1/2, seq=1:2, recv 1ms ago, lasting 1ms",
        );
        assert_eq!(m.peer, IpAddr::V6(Ipv6Addr::LOCALHOST));
    }

    #[test]
    fn dynamic_debug_decorations_and_prefixes() {
        let msg = "Probing zero-window on 198.18.0.2:1/2, seq=1:2, recv 1ms ago, lasting 1ms";
        for prefix in [
            "<intr> ",
            "[1234] ",
            "tcp_retransmit_timer:540: ",
            "<intr> tcp_timer:tcp_retransmit_timer:net/ipv4/tcp_timer.c:540: ",
            "MPTCP: ",
        ] {
            let line = format!("6,1,2,-;{prefix}{msg}");
            assert_eq!(treason(&line).peer, ip("198.18.0.2"), "{line}");
        }
    }

    /// A record injected from userspace always carries a non-kernel
    /// facility (devkmsg_write forces LOG_USER): never evidence.
    #[test]
    fn userspace_injected_records_are_ignored() {
        let msg = "TCP: Treason uncloaked! Peer 198.18.0.2:1/2 shrinks window 1:2. Repaired.";
        for line in [
            format!("12,99,100,-;{msg}"),
            format!("14,99,100,-;{msg}"),
            format!("<14>[ 1.0] {msg}"),
        ] {
            assert_eq!(classify(line.as_bytes()), Parsed::Other, "{line}");
            assert!(parse_line(&line).is_none());
        }
        // Facility 0, any level, is the kernel.
        for level in 0..8 {
            assert!(parse_line(&format!("{level},99,100,-;{msg}")).is_some());
        }
    }

    #[test]
    fn lookalikes_are_ignored() {
        for line in [
            "",
            "   ",
            "TCP: request_sock_TCP: Possible SYN flooding on port 8080. Sending cookies.",
            "Peer review: 198.18.0.2:1/2 looks fine",
            "TCP: Peer 198.18.0.2:40000 closed",
            "6,1,2,-;IPv4: martian source 198.18.0.2 from 198.18.0.3, on dev eth0",
            "[ 1.0] audit: type=1400 comm=\"Treason\" name=\"uncloaked\"",
            "8021q: adding VLAN 0 to HW filter on device eth0",
            "Probing zero-window is a TCP feature",
        ] {
            let expected = if line.trim().is_empty() {
                Parsed::Filler
            } else {
                Parsed::Other
            };
            assert_eq!(classify(line.as_bytes()), expected, "{line:?}");
            assert!(parse_line(line).is_none());
        }
        assert_eq!(classify(b" SUBSYSTEM=net"), Parsed::Filler);
        assert_eq!(classify(b" DEVICE=n2"), Parsed::Filler);
    }

    #[test]
    fn truncated_and_damaged_messages_are_malformed() {
        let full = "TCP: Treason uncloaked! Peer 117.79.83.112:4638/8080 shrinks window 3207520931:3207522811. Repaired.";
        // Every proper prefix that still names the message is malformed
        // (never a half-parsed alert).
        for cut in "TCP: Treason uncloaked".len()..full.len() {
            let line = &full[..cut];
            assert_eq!(
                classify(line.as_bytes()),
                Parsed::Malformed(Malformed::Unparsable(Spelling::TreasonUncloaked)),
                "{line:?}"
            );
        }
        let probing = "Probing zero-window on 198.18.0.2:1/2, seq=1:2, recv 1ms ago, lasting 1ms";
        for cut in "Probing zero-window on".len()..probing.len() {
            assert!(parse_line(&probing[..cut]).is_none(), "{}", &probing[..cut]);
        }
        for bad in [
            "Peer 999.1.1.1:1/2 unexpectedly shrunk window 1:2 (repaired)",
            "Peer 198.18.0.2:70000/2 unexpectedly shrunk window 1:2 (repaired)",
            "Peer 198.18.0.2:1/99999 unexpectedly shrunk window 1:2 (repaired)",
            "Peer 198.18.0.2:+1/2 unexpectedly shrunk window 1:2 (repaired)",
            "Peer 198.18.0.2/2 unexpectedly shrunk window 1:2 (repaired)",
            "Peer [2001:db8::1]:1/2 unexpectedly shrunk window 1:2 (repaired)",
            "Peer fe80::1%eth0:1/2 unexpectedly shrunk window 1:2 (repaired)",
            "Peer 198.18.0.2:1/2 unexpectedly shrunk window 4294967296:2 (repaired)",
            "Peer 198.18.0.2:1/2 unexpectedly shrunk window 1:2 (repaired) and more",
            "Peer example.com:1/2 unexpectedly shrunk window 1:2 (repaired)",
            "Probing zero-window on 198.18.0.2:1/2, seq=1:2, recv -1ms ago, lasting 1ms",
        ] {
            assert!(
                matches!(
                    classify(bad.as_bytes()),
                    Parsed::Malformed(Malformed::Unparsable(_))
                ),
                "{bad}"
            );
        }
        for header in [
            "6,1;x",
            "6,a,2,-;x",
            "6,1,2,;x",
            "6,1,2,-",
            "99999999999999999999999,1,2,-;x",
        ] {
            assert_eq!(
                classify(header.as_bytes()),
                Parsed::Malformed(Malformed::BadHeader),
                "{header}"
            );
        }
    }

    #[test]
    fn binary_junk_never_panics() {
        assert_eq!(
            classify(b"6,1,2,-;TCP: Treason\xff\xfe uncloaked"),
            Parsed::Malformed(Malformed::NotUtf8)
        );
        assert_eq!(
            classify(b"TCP: Peer 198.18.0.2:1/2\0 unexpectedly shrunk window 1:2 (repaired)"),
            Parsed::Malformed(Malformed::Nul)
        );
        let long = format!(
            "Peer 198.18.0.2:1/2 unexpectedly shrunk window 1:2 (repaired){}",
            " ".repeat(MAX_LINE)
        );
        assert_eq!(
            classify(long.as_bytes()),
            Parsed::Malformed(Malformed::TooLong)
        );
        assert!(parse_line(&"9".repeat(1 << 20)).is_none());
        assert!(parse_line(&format!("Peer {}", "1:".repeat(5000))).is_none());
        assert!(parse_line(&"[".repeat(5000)).is_none());
        assert!(parse_line(&format!("<{}>", "9".repeat(100))).is_none());
        // A deterministic pseudo-random byte soup, with and without a real
        // message embedded: no panic, and only a well-formed line matches.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for round in 0..2000 {
            let mut line = Vec::new();
            for _ in 0..(round % 200) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                line.push((x >> 32) as u8);
            }
            if round % 3 == 0 {
                line.extend_from_slice(b"Treason uncloaked! Peer 1.2.3.4:5/6");
            }
            let _ = classify(&line);
            if let Ok(s) = std::str::from_utf8(&line) {
                let _ = parse_line(s);
            }
        }
    }

    // ---- the reader ----

    fn temp_dir(tag: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("blocker-kmsg-{tag}-"))
            .tempdir()
            .unwrap()
    }

    fn mixed_log() -> Vec<u8> {
        let mut log = Vec::new();
        let mut line = |b: &[u8]| {
            log.extend_from_slice(b);
            log.push(b'\n');
        };
        line(b"6,1,100,-;Linux version 6.18.0 (builder@host)");
        line(b" SUBSYSTEM=cpu");
        line(b"7,2,200,-;TCP: Treason uncloaked! Peer 198.18.0.10:1000/80 shrinks window 1:2. Repaired.");
        line(b"[  300.000001] TCP: Peer 198.18.0.11:1001/80 unexpectedly shrunk window 1:2 (repaired)");
        line(b"Probing zero-window on 2001:0db8:0000:0000:0000:0000:0000:0012:1002/443, seq=5:9, recv 1ms ago, lasting 2ms");
        line(b"12,3,400,-;TCP: Treason uncloaked! Peer 198.18.0.66:1/2 shrinks window 1:2. Repaired.");
        line(b"6,4,500,-;e1000: eth0 NIC Link is Up");
        line(b"\xff\xfe\xfd junk");
        line(b"6,5,600,-;Peer 198.18.0.13:1/2 unexpectedly shrunk window 1:");
        line(&[b'A'; MAX_LINE + 10]);
        line(b"");
        line(b"6,6");
        // The last record has no newline.
        log.extend_from_slice(
            b"7,7,700,-;Peer 198.18.0.14:1003/22 unexpectedly shrunk window 1:2 (repaired)",
        );
        log
    }

    #[tokio::test]
    async fn reads_a_regular_file_with_mixed_content() {
        let dir = temp_dir("mixed");
        let path = dir.path().join("kmsg.log");
        std::fs::write(&path, mixed_log()).unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let counters = Arc::new(PipelineCounters::default());
        let opts = KmsgOptions {
            from_start: true,
            ..KmsgOptions::default()
        };
        tokio::time::timeout(
            Duration::from_secs(10),
            run(path.clone(), tx, Arc::clone(&counters), opts),
        )
        .await
        .expect("reader finishes at end of file")
        .expect("reader succeeds");
        let mut got = Vec::new();
        while let Ok(a) = rx.try_recv() {
            got.push((a.peer, a.peer_port, a.local_port, a.signature));
        }
        assert_eq!(
            got,
            vec![
                (
                    ip("198.18.0.10"),
                    Some(1000),
                    Some(80),
                    "treason-uncloaked".into()
                ),
                (
                    ip("198.18.0.11"),
                    Some(1001),
                    Some(80),
                    "unexpectedly-shrunk-window".into()
                ),
                (
                    ip("2001:db8::12"),
                    Some(1002),
                    Some(443),
                    "probing-zero-window".into()
                ),
                (
                    ip("198.18.0.14"),
                    Some(1003),
                    Some(22),
                    "unexpectedly-shrunk-window".into()
                ),
            ]
        );
        let s = counters.snapshot();
        // Ignored: "Linux version", the user-facility record, "e1000".
        // Malformed: invalid UTF-8, the truncated message, the overlong
        // line, the broken header "6,6".
        assert_eq!(
            (s.delivered, s.dropped_full, s.ignored, s.malformed),
            (4, 0, 3, 4)
        );
    }

    #[tokio::test]
    async fn starts_at_the_end_by_default() {
        let dir = temp_dir("end");
        let path = dir.path().join("kmsg.log");
        std::fs::write(&path, mixed_log()).unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let counters = Arc::new(PipelineCounters::default());
        tokio::time::timeout(
            Duration::from_secs(10),
            run(path, tx, Arc::clone(&counters), KmsgOptions::default()),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(rx.try_recv().is_err());
        assert_eq!(counters.snapshot(), Default::default());
    }

    #[tokio::test]
    async fn full_channel_drops_and_counts() {
        let dir = temp_dir("full");
        let path = dir.path().join("kmsg.log");
        let mut f = File::create(&path).unwrap();
        for i in 0..10 {
            writeln!(
                f,
                "7,{i},1,-;Peer 198.18.0.{i}:1/2 unexpectedly shrunk window 1:2 (repaired)"
            )
            .unwrap();
        }
        drop(f);
        let (tx, _rx) = mpsc::channel(3);
        let counters = Arc::new(PipelineCounters::default());
        let opts = KmsgOptions {
            from_start: true,
            ..KmsgOptions::default()
        };
        run(path, tx, Arc::clone(&counters), opts).await.unwrap();
        let s = counters.snapshot();
        assert_eq!((s.delivered, s.dropped_full), (3, 7));
    }

    #[tokio::test]
    async fn missing_file_is_an_error_with_a_hint() {
        let (tx, _rx) = mpsc::channel(1);
        let err = run(
            "/nonexistent/blocker-test/kmsg".into(),
            tx,
            Arc::default(),
            KmsgOptions::default(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, KmsgError::Open { .. }));
        assert!(err.to_string().contains("CAP_SYSLOG"), "{err}");
    }

    /// On the real device: starts at the end, waits, and stops soon after
    /// the channel closes. Skipped where /dev/kmsg cannot be opened
    /// (containers, dmesg_restrict without privileges).
    #[tokio::test]
    async fn device_reader_stops_when_the_channel_closes() {
        let path = PathBuf::from("/dev/kmsg");
        if File::open(&path).is_err() {
            eprintln!("skipping: /dev/kmsg is not readable here");
            return;
        }
        let (tx, rx) = mpsc::channel(16);
        let counters = Arc::new(PipelineCounters::default());
        let opts = KmsgOptions {
            poll_interval: Duration::from_millis(50),
            ..KmsgOptions::default()
        };
        let task = tokio::spawn(run(path, tx, counters, opts));
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(!task.is_finished(), "the device reader waits for records");
        drop(rx);
        let result = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("reader stops after the channel closes")
            .unwrap();
        assert!(result.is_ok(), "{result:?}");
    }

    /// Replays the real ring buffer: every record the running kernel wrote
    /// has a header we understand (nothing malformed), and the reader keeps
    /// up with it.
    #[tokio::test]
    async fn device_replay_from_start_parses_real_records() {
        let path = PathBuf::from("/dev/kmsg");
        if File::open(&path).is_err() {
            eprintln!("skipping: /dev/kmsg is not readable here");
            return;
        }
        let (tx, rx) = mpsc::channel(1024);
        let counters = Arc::new(PipelineCounters::default());
        let opts = KmsgOptions {
            from_start: true,
            poll_interval: Duration::from_millis(50),
            ..KmsgOptions::default()
        };
        let task = tokio::spawn(run(path, tx, Arc::clone(&counters), opts));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while counters.snapshot().ignored == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no records read from /dev/kmsg"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(rx);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(
            counters.snapshot().malformed,
            0,
            "{:?}",
            counters.snapshot()
        );
    }
}

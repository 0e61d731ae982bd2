//! One daemon per pin directory and per state directory: an exclusive
//! `flock(2)` on each, held for the daemon's life. The kernel drops a flock
//! when its holder dies (even by SIGKILL), so no stale lock survives a crash,
//! and unlike a pid file a reused pid cannot fool it. The holder's pid is
//! read from `/proc/locks`, so the refusal names the running daemon.

use std::{
    fs::File,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

/// File in the state directory the daemon locks.
pub const LOCK_FILE: &str = "daemon.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another blocker daemon{} already runs on {}; stop it first (or give this one its own --pin-dir and --state-dir)",
        match .pid { Some(p) => format!(" (pid {p})"), None => String::new() },
        .path.display()
    )]
    Held { path: PathBuf, pid: Option<u32> },
    #[error("locking {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Exclusive locks, released when dropped (or when the process dies).
#[derive(Debug)]
pub struct DaemonLock {
    _held: Vec<File>,
}

impl DaemonLock {
    /// Locks `pin_dir` (a directory on bpffs, which holds no regular files,
    /// so the directory itself is locked) and `<state_dir>/daemon.lock`.
    pub fn acquire(pin_dir: &Path, state_dir: &Path) -> Result<Self, LockError> {
        let state = state_dir.join(LOCK_FILE);
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| LockError::Io { path, source }
        };
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&state)
            .map_err(io(&state))?;
        lock(&f, &state)?;
        let d = File::open(pin_dir).map_err(io(pin_dir))?;
        lock(&d, pin_dir)?;
        Ok(Self { _held: vec![f, d] })
    }
}

fn lock(f: &File, path: &Path) -> Result<(), LockError> {
    use rustix::{fs::FlockOperation, io::Errno};
    match rustix::fs::flock(f, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(()),
        Err(Errno::WOULDBLOCK) => Err(LockError::Held {
            path: path.to_owned(),
            pid: holder(f),
        }),
        Err(e) => Err(LockError::Io {
            path: path.to_owned(),
            source: e.into(),
        }),
    }
}

/// The pid holding a flock on `f`'s inode, from `/proc/locks`.
fn holder(f: &File) -> Option<u32> {
    let meta = f.metadata().ok()?;
    let text = std::fs::read_to_string("/proc/locks").ok()?;
    holder_in(&text, meta.dev(), meta.ino())
}

/// `/proc/locks` lines look like
/// `1: FLOCK  ADVISORY  WRITE 1234 00:1f:5678 0 EOF` (device major:minor in
/// hex, inode in decimal); a waiting lock is prefixed with `->`.
fn holder_in(text: &str, dev: u64, ino: u64) -> Option<u32> {
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    text.lines().filter(|l| !l.contains("->")).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.get(1) != Some(&"FLOCK") {
            return None;
        }
        let pid: u32 = f.get(4)?.parse().ok()?;
        let mut id = f.get(5)?.split(':');
        let ma = u32::from_str_radix(id.next()?, 16).ok()?;
        let mi = u32::from_str_radix(id.next()?, 16).ok()?;
        let i: u64 = id.next()?.parse().ok()?;
        (ma == major && mi == minor && i == ino).then_some(pid)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder() {
        let dir = std::env::temp_dir().join(format!("blocker-lock-{}", std::process::id()));
        let pins = dir.join("pins");
        std::fs::create_dir_all(&pins).unwrap();
        let first = DaemonLock::acquire(&pins, &dir).unwrap();
        // flock locks belong to the open file description: a second open
        // in the same process conflicts like another process would.
        let err = DaemonLock::acquire(&pins, &dir).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("(pid {})", std::process::id())),
            "{msg}"
        );
        drop(first);
        DaemonLock::acquire(&pins, &dir).expect("released on drop");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn proc_locks_lines_are_parsed() {
        let dev = rustix::fs::makedev(0, 0x1f);
        let text = "1: POSIX  ADVISORY  WRITE 99 00:1f:42 0 EOF\n2: FLOCK  ADVISORY  WRITE 1234 00:1f:42 0 EOF\n2: -> FLOCK  ADVISORY  WRITE 555 00:1f:42 0 EOF\n";
        assert_eq!(holder_in(text, dev, 42), Some(1234));
        assert_eq!(holder_in(text, dev, 43), None);
    }
}

//! The guest's root filesystem: an uncompressed initramfs (newc cpio)
//! assembled from host files, cached under `~/.cache/blocker/vm/initramfs/`
//! by the SHA-256 of everything that goes into it.
//!
//! Host binaries keep their host paths, with the host's top-level symlinks
//! (`/bin -> usr/bin`, `/lib64 -> usr/lib64`, ...) reproduced, so the ELF
//! interpreter and the libraries that `ldd` names resolve exactly as on the
//! host.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::BufWriter,
    os::unix::fs::PermissionsExt as _,
    path::{Component, Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::util::{cmd_output, note, run, sha256_bytes, sha256_files};

/// What happens to a host file on its way into the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Transform {
    /// Copied as is.
    Copy,
    /// `objcopy --strip-debug`: the test executables carry hundreds of MB
    /// of DWARF that the guest does not need (symbols stay for backtraces).
    StripDebug,
    /// `xz -dc`: busybox insmod loads plain `.ko` files.
    Unxz,
    /// `zstd -dc`, likewise.
    Unzstd,
}

impl Transform {
    fn tag(self) -> &'static str {
        match self {
            Self::Copy => "copy",
            Self::StripDebug => "strip-debug",
            Self::Unxz => "unxz",
            Self::Unzstd => "unzstd",
        }
    }
}

#[derive(Debug)]
enum Node {
    Dir,
    Host {
        src: PathBuf,
        mode: u32,
        transform: Transform,
    },
    Bytes {
        data: Vec<u8>,
        mode: u32,
    },
    Symlink(String),
    CharDev {
        major: u32,
        minor: u32,
    },
}

/// An initramfs under construction: image path (absolute, no trailing
/// slash) to node. Parent directories are implied.
#[derive(Default)]
pub struct Image {
    nodes: BTreeMap<String, Node>,
}

fn key(path: &Path) -> anyhow::Result<String> {
    let s = path
        .to_str()
        .with_context(|| format!("non-UTF-8 path {}", path.display()))?;
    anyhow::ensure!(s.starts_with('/'), "image paths are absolute: {s}");
    Ok(s.trim_end_matches('/').to_string())
}

/// `a/b/../c` -> `a/c`, lexically (only used on paths whose symlinks have
/// already been resolved).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

impl Image {
    pub fn dir(&mut self, path: &str) -> anyhow::Result<()> {
        self.nodes.insert(key(Path::new(path))?, Node::Dir);
        Ok(())
    }

    pub fn bytes(&mut self, path: &str, data: impl Into<Vec<u8>>, mode: u32) -> anyhow::Result<()> {
        self.nodes.insert(
            key(Path::new(path))?,
            Node::Bytes {
                data: data.into(),
                mode,
            },
        );
        Ok(())
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> anyhow::Result<()> {
        self.nodes
            .insert(key(Path::new(path))?, Node::Symlink(target.to_string()));
        Ok(())
    }

    pub fn char_dev(&mut self, path: &str, major: u32, minor: u32) -> anyhow::Result<()> {
        self.nodes
            .insert(key(Path::new(path))?, Node::CharDev { major, minor });
        Ok(())
    }

    pub fn contains(&self, path: &str) -> bool {
        self.nodes.contains_key(path.trim_end_matches('/'))
    }

    /// Host file `src` at image path `dest`.
    pub fn host_file(
        &mut self,
        dest: &str,
        src: &Path,
        transform: Transform,
    ) -> anyhow::Result<()> {
        let meta = fs::metadata(src).with_context(|| format!("{}", src.display()))?;
        anyhow::ensure!(meta.is_file(), "{} is not a regular file", src.display());
        self.nodes.insert(
            key(Path::new(dest))?,
            Node::Host {
                src: src.to_path_buf(),
                mode: meta.permissions().mode() & 0o7777,
                transform,
            },
        );
        Ok(())
    }

    /// Host path `path` at the same place in the image, every symlink on
    /// the way reproduced as a symlink (so `/lib/x86_64-linux-gnu/libz.so.1`
    /// becomes the link `/lib`, the link `libz.so.1` and the real file).
    pub fn host_path(&mut self, path: &Path) -> anyhow::Result<()> {
        self.host_path_depth(&normalize(path), 0)
    }

    fn host_path_depth(&mut self, path: &Path, depth: u32) -> anyhow::Result<()> {
        anyhow::ensure!(depth < 40, "too many symlinks resolving {}", path.display());
        let parts: Vec<&std::ffi::OsStr> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n),
                _ => None,
            })
            .collect();
        let mut cur = PathBuf::from("/");
        for (i, part) in parts.iter().enumerate() {
            let next = cur.join(part);
            let meta = fs::symlink_metadata(&next)
                .with_context(|| format!("{} (resolving {})", next.display(), path.display()))?;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&next)?;
                let target_str = target
                    .to_str()
                    .with_context(|| format!("non-UTF-8 link {}", next.display()))?;
                self.symlink(&key(&next)?, target_str)?;
                let rest: PathBuf = parts[i + 1..].iter().collect();
                let resolved = normalize(&cur.join(&target)).join(rest);
                return self.host_path_depth(&resolved, depth + 1);
            }
            if i + 1 == parts.len() {
                if meta.is_dir() {
                    self.dir(&key(&next)?)?;
                } else {
                    self.host_file(&key(&next)?, &next, Transform::Copy)?;
                }
            }
            cur = next;
        }
        Ok(())
    }

    /// Host executable `path` and every shared library `ldd` lists for it.
    pub fn host_binary(&mut self, path: &Path) -> anyhow::Result<()> {
        self.host_path(path)?;
        for lib in shared_libraries(path)? {
            self.host_path(&lib)?;
        }
        Ok(())
    }

    /// Host executable `src` at image path `dest` (e.g. a test binary under
    /// /opt), with its shared libraries at their host paths.
    pub fn host_binary_at(
        &mut self,
        dest: &str,
        src: &Path,
        transform: Transform,
    ) -> anyhow::Result<()> {
        self.host_file(dest, src, transform)?;
        for lib in shared_libraries(src)? {
            self.host_path(&lib)?;
        }
        Ok(())
    }

    /// Writes the image (or finds it cached) and returns its path.
    ///
    /// `cache` is `~/.cache/blocker/vm`; `name` tells images of different
    /// kernels apart (older images of the same name are removed).
    pub fn build(&self, cache: &Path, name: &str) -> anyhow::Result<PathBuf> {
        self.check_parents()?;
        let hosts: Vec<(&String, &PathBuf, Transform)> = self
            .nodes
            .iter()
            .filter_map(|(k, n)| match n {
                Node::Host { src, transform, .. } => Some((k, src, *transform)),
                _ => None,
            })
            .collect();
        let srcs: Vec<PathBuf> = hosts.iter().map(|(_, s, _)| s.to_path_buf()).collect();
        let hashes: BTreeMap<&String, String> = hosts
            .iter()
            .map(|(k, _, _)| *k)
            .zip(sha256_files(&srcs)?)
            .collect();
        let manifest = self.manifest(&hashes)?;
        let digest = sha256_bytes(manifest.as_bytes())?;
        let dir = cache.join("initramfs");
        let stage = cache.join("staged");
        fs::create_dir_all(&dir)?;
        fs::create_dir_all(&stage)?;
        let image = dir.join(format!("{name}-{}.cpio", &digest[..16]));
        if image.exists() {
            note(&format!(
                "initramfs for {name} is cached ({}, {} entries)",
                image.display(),
                self.nodes.len()
            ));
            return Ok(image);
        }
        note(&format!(
            "building the initramfs for {name}: {} entries (inputs changed or not built yet)",
            self.nodes.len()
        ));
        // Transformed files are kept by source hash, so an unchanged test
        // executable is not stripped again for the next kernel or run.
        let mut staged: BTreeMap<&String, PathBuf> = BTreeMap::new();
        for (k, src, transform) in &hosts {
            if *transform == Transform::Copy {
                continue;
            }
            let out = stage.join(format!("{}-{}", hashes[k], transform.tag()));
            if !out.exists() {
                let tmp = out.with_extension("tmp");
                transform_file(src, &tmp, *transform)?;
                fs::rename(&tmp, &out)?;
            }
            staged.insert(k, out);
        }
        let tmp = image.with_extension("tmp");
        self.write_cpio(&tmp, &staged)
            .with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, &image)?;
        fs::write(image.with_extension("manifest"), &manifest)?;
        prune(&dir, &stage, name, &image)?;
        let size = fs::metadata(&image)?.len();
        note(&format!(
            "wrote {} ({} MiB)",
            image.display(),
            size / (1024 * 1024)
        ));
        Ok(image)
    }

    /// Every node's parent must be a directory in the image, not a symlink
    /// (the kernel's cpio unpacker does not follow links).
    fn check_parents(&self) -> anyhow::Result<()> {
        for path in self.nodes.keys() {
            let mut p = Path::new(path);
            while let Some(parent) = p.parent() {
                if let Some(Node::Symlink(t)) = parent.to_str().and_then(|s| self.nodes.get(s)) {
                    bail!(
                        "image path {path} goes through the symlink {} -> {t}; add it at its real path",
                        parent.display()
                    );
                }
                p = parent;
            }
        }
        Ok(())
    }

    /// One line per node: path, kind, mode and content hash or target.
    fn manifest(&self, hashes: &BTreeMap<&String, String>) -> anyhow::Result<String> {
        let mut m = String::from("blocker vmtest initramfs v1\n");
        for (path, node) in &self.nodes {
            let line = match node {
                Node::Dir => format!("{path} dir"),
                Node::Host {
                    mode, transform, ..
                } => format!("{path} file {mode:o} {} {}", hashes[path], transform.tag()),
                Node::Bytes { data, mode } => {
                    format!("{path} file {mode:o} {} inline", sha256_bytes(data)?)
                }
                Node::Symlink(t) => format!("{path} symlink {t}"),
                Node::CharDev { major, minor } => format!("{path} chardev {major}:{minor}"),
            };
            m.push_str(&line);
            m.push('\n');
        }
        Ok(m)
    }

    fn write_cpio(&self, out: &Path, staged: &BTreeMap<&String, PathBuf>) -> anyhow::Result<()> {
        let mut w = Cpio::new(BufWriter::new(fs::File::create(out)?));
        let mut dirs_done = BTreeSet::new();
        for (path, node) in &self.nodes {
            // Implied parents first (BTreeMap order puts a directory before
            // its contents, but not every parent is an explicit node).
            let mut parents: Vec<&Path> = Path::new(path).ancestors().skip(1).collect();
            parents.reverse();
            for p in parents {
                let p = p.to_str().expect("utf-8");
                if p != "/" && !self.nodes.contains_key(p) && dirs_done.insert(p.to_string()) {
                    w.entry(p, 0o040_755, &[], (0, 0))?;
                }
            }
            match node {
                Node::Dir => {
                    if dirs_done.insert(path.clone()) {
                        w.entry(path, 0o040_755, &[], (0, 0))?;
                    }
                }
                Node::Host { src, mode, .. } => {
                    let from = staged.get(path).unwrap_or(src);
                    let data = fs::read(from).with_context(|| format!("{}", from.display()))?;
                    w.entry(path, 0o100_000 | mode, &data, (0, 0))?;
                }
                Node::Bytes { data, mode } => w.entry(path, 0o100_000 | mode, data, (0, 0))?,
                Node::Symlink(t) => w.entry(path, 0o120_777, t.as_bytes(), (0, 0))?,
                Node::CharDev { major, minor } => {
                    w.entry(path, 0o020_600, &[], (*major, *minor))?;
                }
            }
        }
        w.finish()
    }
}

fn transform_file(src: &Path, out: &Path, transform: Transform) -> anyhow::Result<()> {
    match transform {
        Transform::Copy => {
            fs::copy(src, out)?;
        }
        Transform::StripDebug => run(Command::new("objcopy")
            .arg("--strip-debug")
            .arg(src)
            .arg(out))?,
        Transform::Unxz | Transform::Unzstd => {
            let tool = if transform == Transform::Unxz {
                "xz"
            } else {
                "zstd"
            };
            let data = Command::new(tool)
                .arg("-dc")
                .arg(src)
                .output()
                .with_context(|| format!("starting {tool}"))?;
            anyhow::ensure!(
                data.status.success(),
                "{tool} -dc {} failed: {}",
                src.display(),
                String::from_utf8_lossy(&data.stderr)
            );
            fs::write(out, data.stdout)?;
        }
    }
    Ok(())
}

/// Keeps the newest two images of `name` (a rerun with another filter
/// does not throw away the default one) and the staged files they use.
fn prune(dir: &Path, stage: &Path, name: &str, keep: &Path) -> anyhow::Result<()> {
    let prefix = format!("{name}-");
    let mut ours: Vec<(std::time::SystemTime, PathBuf)> = fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "cpio")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.strip_prefix(&prefix).is_some_and(|h| !h.contains('-')))
        })
        .filter_map(|p| Some((fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    ours.sort();
    ours.reverse();
    for (_, p) in ours.iter().skip(2) {
        if p != keep {
            let _ = fs::remove_file(p);
            let _ = fs::remove_file(p.with_extension("manifest"));
        }
    }
    // Staged files no remaining manifest refers to.
    let mut used = BTreeSet::new();
    for e in fs::read_dir(dir)?.flatten() {
        if e.path().extension().is_some_and(|x| x == "manifest") {
            for line in fs::read_to_string(e.path())?.lines() {
                let f: Vec<&str> = line.split(' ').collect();
                if f.len() == 5 && f[1] == "file" && f[4] != "copy" && f[4] != "inline" {
                    used.insert(format!("{}-{}", f[3], f[4]));
                }
            }
        }
    }
    for e in fs::read_dir(stage)?.flatten() {
        if !used.contains(&*e.file_name().to_string_lossy()) {
            let _ = fs::remove_file(e.path());
        }
    }
    Ok(())
}

/// Shared libraries (and the ELF interpreter) of `path`, as `ldd` resolves
/// them on the host. None for static executables.
pub fn shared_libraries(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(path)
        .output()
        .context("starting ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // ldd exits 1 for "not a dynamic executable".
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("not a dynamic executable") || text.contains("statically linked") {
            return Ok(Vec::new());
        }
        bail!("ldd {} failed: {err}", path.display());
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.contains("not found") {
            bail!(
                "{}: shared library missing on the host: {line}",
                path.display()
            );
        }
        // `libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)` or
        // `/lib64/ld-linux-x86-64.so.2 (0x...)`; vdso has no path.
        let file = line
            .split_once("=>")
            .map_or(line, |(_, r)| r)
            .split_whitespace()
            .next()
            .unwrap_or_default();
        if file.starts_with('/') {
            libs.push(PathBuf::from(file));
        }
    }
    Ok(libs)
}

/// `name` on the host's PATH-like search list.
pub fn which(name: &str) -> Option<PathBuf> {
    [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ]
    .iter()
    .map(|d| Path::new(d).join(name))
    .find(|p| p.is_file())
}

/// Applets of the host's busybox (`bin/sh`, `sbin/insmod`, ...).
pub fn busybox_applets(busybox: &Path) -> anyhow::Result<Vec<String>> {
    Ok(cmd_output(Command::new(busybox).arg("--list-full"))?
        .lines()
        .map(|l| format!("/{}", l.trim()))
        .collect())
}

/// A newc ("070701") cpio writer: what the kernel's initramfs unpacker
/// reads. Owners root, timestamps zero, so equal inputs give equal bytes.
struct Cpio<W: std::io::Write> {
    w: W,
    ino: u32,
}

impl<W: std::io::Write> Cpio<W> {
    fn new(w: W) -> Self {
        Self { w, ino: 1 }
    }

    fn entry(
        &mut self,
        path: &str,
        mode: u32,
        data: &[u8],
        rdev: (u32, u32),
    ) -> anyhow::Result<()> {
        let name = path.trim_start_matches('/');
        let name = if name.is_empty() { "." } else { name };
        let nlink = if mode & 0o170_000 == 0o040_000 { 2 } else { 1 };
        let size = u32::try_from(data.len()).context("file over 4 GiB in the initramfs")?;
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            size,
            0, // dev major
            0, // dev minor
            rdev.0,
            rdev.1,
            u32::try_from(name.len() + 1)?,
            0, // check
        ];
        self.ino += 1;
        let mut header = String::from("070701");
        for f in fields {
            header.push_str(&format!("{f:08x}"));
        }
        self.w.write_all(header.as_bytes())?;
        self.w.write_all(name.as_bytes())?;
        self.w.write_all(&[0])?;
        self.pad(header.len() + name.len() + 1)?;
        self.w.write_all(data)?;
        self.pad(data.len())?;
        Ok(())
    }

    fn pad(&mut self, written: usize) -> anyhow::Result<()> {
        let n = (4 - written % 4) % 4;
        self.w.write_all(&[0u8; 3][..n])?;
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<()> {
        self.ino = 0;
        self.entry("TRAILER!!!", 0, &[], (0, 0))?;
        self.w.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_entries_are_aligned_and_terminated() {
        let mut buf = Vec::new();
        {
            let mut c = Cpio::new(&mut buf);
            c.entry("/init", 0o100_755, b"#!/bin/sh\n", (0, 0)).unwrap();
            c.finish().unwrap();
        }
        assert!(buf.starts_with(b"070701"));
        assert_eq!(buf.len() % 4, 0);
        let text = String::from_utf8_lossy(&buf);
        assert!(text.contains("init\0"));
        assert!(text.contains("TRAILER!!!\0"));
        // name size field (incl. NUL) of the first entry: "init" + 1.
        assert_eq!(&buf[6 + 11 * 8..6 + 12 * 8], b"00000005");
    }

    #[test]
    fn normalize_is_lexical() {
        assert_eq!(
            normalize(Path::new("/usr/bin/../lib/./x")),
            PathBuf::from("/usr/lib/x")
        );
    }
}

//! Debian kernel packages for the guests: chosen from the configured apt
//! repositories, downloaded with `apt-get download`, unpacked with
//! `dpkg-deb -x` (never installed), and cached under
//! `~/.cache/blocker/vm/kernels/PACKAGE_VERSION/`.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::util::{cmd_output, note, run};

/// A family of Debian kernel packages; the newest available one is used.
pub struct Series {
    /// What `--kernel` accepts, e.g. `6.1`.
    pub name: &'static str,
    /// Package names look like `PREFIX<digits>[+debN]-amd64`.
    prefix: &'static str,
    /// Why this kernel is in the matrix.
    pub why: &'static str,
}

pub const SERIES: &[Series] = &[
    Series {
        name: "6.1",
        prefix: "linux-image-6.1.0-",
        why: "Debian 12's own kernel (6.1 LTS): kprobes, dynamic debug, BTF, \
              the pre-6.6 spelling of the treason message",
    },
    Series {
        name: "6.12",
        prefix: "linux-image-6.12.",
        why: "6.12 LTS (Debian 13's kernel, also shipped to Debian 12 by its security \
              updates): the post-6.6 spelling, newer struct layouts",
    },
];

const ARCH_SUFFIX: &str = "-amd64";

impl Series {
    /// `linux-image-6.1.0-50-amd64` or `linux-image-6.12.117+deb12-amd64`,
    /// not the `-cloud-amd64`/`-rt-amd64` flavours, `-dbg` or `-unsigned`.
    fn matches(&self, package: &str) -> bool {
        let Some(mid) = package
            .strip_prefix(self.prefix)
            .and_then(|rest| rest.strip_suffix(ARCH_SUFFIX))
        else {
            return false;
        };
        let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
        match mid.split_once("+deb") {
            Some((number, release)) => digits(number) && digits(release),
            None => digits(mid),
        }
    }
}

/// A kernel ready to boot: the unpacked package.
pub struct Kernel {
    /// What the user asked for (`6.1`, a package name, a .deb path).
    pub label: String,
    pub package: String,
    pub version: String,
    /// `uname -r` of the kernel (the directory name under lib/modules).
    pub release: String,
    /// Where the package is unpacked.
    pub root: PathBuf,
}

impl Kernel {
    pub fn vmlinuz(&self) -> PathBuf {
        self.root.join(format!("boot/vmlinuz-{}", self.release))
    }

    pub fn modules_dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.release)
    }

    /// `CONFIG_NAME` from the package's `boot/config-*`: `Some("y")`,
    /// `Some("m")`, ... or `None` when unset.
    pub fn config(&self, name: &str) -> anyhow::Result<Option<String>> {
        let path = self.root.join(format!("boot/config-{}", self.release));
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let key = format!("CONFIG_{name}=");
        Ok(text
            .lines()
            .find_map(|l| l.strip_prefix(&key))
            .map(|v| v.trim_matches('"').to_string()))
    }
}

fn kernels_dir(cache: &Path) -> PathBuf {
    cache.join("kernels")
}

/// Resolves `spec` (a series name, a package name or a local `.deb`) to an
/// unpacked kernel, downloading it if it is not cached.
pub fn resolve(cache: &Path, spec: &str) -> anyhow::Result<Kernel> {
    if spec.ends_with(".deb") {
        return from_deb(cache, spec, Path::new(spec));
    }
    let series = SERIES.iter().find(|s| s.name == spec);
    if series.is_none() && !spec.starts_with("linux-image-") {
        bail!(
            "unknown kernel {spec:?}: use `host`, {}, a Debian package name \
             (linux-image-...) or the path of a .deb",
            SERIES
                .iter()
                .map(|s| format!("`{}`", s.name))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let once = || match series {
        Some(series) => from_series(cache, series),
        None => {
            let version =
                candidate_version(spec)?.with_context(|| format!("apt knows no package {spec}"))?;
            from_package(cache, spec, spec, &version)
        }
    };
    once().or_else(|e| {
        // Stale package lists name versions the archive no longer has.
        note(&format!(
            "{e:#}; refreshing the apt package lists (apt-get update) and retrying"
        ));
        run(Command::new("apt-get").args(["update", "-q"]))?;
        once()
    })
}

fn from_series(cache: &Path, series: &Series) -> anyhow::Result<Kernel> {
    let mut names = search(series)?;
    if names.is_empty() {
        note("apt lists know no kernel packages yet; refreshing them (apt-get update)");
        let _ = run(Command::new("apt-get").args(["update", "-q"]));
        names = search(series)?;
    }
    names.sort_by_key(|n| numbers(n));
    // Newest first; the archive sometimes lists a name whose version is gone.
    for name in names.iter().rev() {
        if let Some(version) = candidate_version(name)? {
            return from_package(cache, series.name, name, &version);
        }
    }
    // No apt answer (offline, no lists): the newest kernel of the series
    // already in the cache.
    let mut cached: Vec<(String, PathBuf)> = fs::read_dir(kernels_dir(cache))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            let (package, _) = file.split_once('_')?;
            (series.matches(package) && e.path().join(STAMP).exists())
                .then(|| (package.to_string(), e.path()))
        })
        .collect();
    cached.sort_by_key(|(p, _)| numbers(p));
    let Some((package, dir)) = cached.pop() else {
        bail!(
            "no {} package found by `apt-cache search` and none cached; \
             is a Debian 12 (bookworm, bookworm-security) apt source configured?",
            series.prefix
        );
    };
    note(&format!(
        "apt offers no {} kernel; using the cached {}",
        series.name, package
    ));
    load(series.name, &dir)
}

/// Package names of `series` that the apt lists know.
fn search(series: &Series) -> anyhow::Result<Vec<String>> {
    let pattern = format!("^{}", series.prefix.replace('.', "\\."));
    let out = cmd_output(Command::new("apt-cache").args(["search", "--names-only", &pattern]))?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| series.matches(n))
        .map(str::to_string)
        .collect())
}

/// The digit runs of a name, for "newest" ordering (`6.1.0-50` > `6.1.0-9`).
fn numbers(s: &str) -> Vec<u64> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().unwrap_or(u64::MAX))
        .collect()
}

/// The version apt would download for `package`, if any.
pub fn candidate_version(package: &str) -> anyhow::Result<Option<String>> {
    let out = cmd_output(Command::new("apt-cache").args(["policy", package]))?;
    Ok(out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Candidate:"))
        .map(|v| v.trim().to_string())
        .filter(|v| v != "(none)"))
}

/// Downloads `package` at `version` into `downloads` with `apt-get
/// download` (never installed) and returns the `.deb`.
pub fn download(downloads: &Path, package: &str, version: &str) -> anyhow::Result<PathBuf> {
    fs::create_dir_all(downloads)?;
    run(Command::new("apt-get")
        .current_dir(downloads)
        // The download dir belongs to root; apt's `_apt` sandbox user could
        // not write there.
        .args(["-q", "-o", "APT::Sandbox::User=root", "download"])
        .arg(format!("{package}={version}")))
    .with_context(|| format!("downloading {package} {version}"))?;
    fs::read_dir(downloads)?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{package}_")) && n.ends_with(".deb"))
        })
        .with_context(|| format!("apt-get download left no {package}_*.deb"))
}

/// Marks a completely unpacked kernel directory.
const STAMP: &str = ".unpacked";

fn from_package(cache: &Path, label: &str, package: &str, version: &str) -> anyhow::Result<Kernel> {
    let dir = kernels_dir(cache).join(format!("{package}_{version}"));
    if dir.join(STAMP).exists() {
        return load(label, &dir);
    }
    note(&format!(
        "downloading the Debian kernel package {package} {version} (apt-get download; \
         unpacked into the cache, not installed)"
    ));
    let deb = download(&cache.join("downloads"), package, version)?;
    let kernel = unpack(cache, label, &deb, &dir);
    let _ = fs::remove_file(&deb);
    let kernel = kernel?;
    // Older kernels of the same series are dead weight now.
    if let Some(series) = SERIES.iter().find(|s| s.name == label) {
        for e in fs::read_dir(kernels_dir(cache))?.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            if e.path() != dir && file.split_once('_').is_some_and(|(p, _)| series.matches(p)) {
                note(&format!(
                    "removing the superseded kernel {file} from the cache"
                ));
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(kernel)
}

fn from_deb(cache: &Path, label: &str, deb: &Path) -> anyhow::Result<Kernel> {
    let field = |f: &str| -> anyhow::Result<String> {
        Ok(
            cmd_output(Command::new("dpkg-deb").args(["-f"]).arg(deb).arg(f))?
                .trim()
                .to_string(),
        )
    };
    let (package, version) = (field("Package")?, field("Version")?);
    let dir = kernels_dir(cache).join(format!("{package}_{version}"));
    if dir.join(STAMP).exists() {
        return load(label, &dir);
    }
    unpack(cache, label, deb, &dir)
}

/// Unpacks `deb` into `dir` and generates modules.dep (Debian generates it
/// at install time; the package does not ship it).
fn unpack(cache: &Path, label: &str, deb: &Path, dir: &Path) -> anyhow::Result<Kernel> {
    let partial = dir.with_extension("partial");
    let _ = fs::remove_dir_all(&partial);
    fs::create_dir_all(kernels_dir(cache))?;
    note(&format!("unpacking {} (dpkg-deb -x)", deb.display()));
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&partial))?;
    let release = release_of(&partial)?;
    note(&format!(
        "generating modules.dep for {release} (depmod -b): the guest loads modules in dependency order"
    ));
    run(Command::new("depmod").arg("-b").arg(&partial).arg(&release))?;
    let _ = fs::remove_dir_all(dir);
    fs::rename(&partial, dir)?;
    fs::write(dir.join(STAMP), b"")?;
    load(label, dir)
}

fn release_of(root: &Path) -> anyhow::Result<String> {
    let modules = root.join("lib/modules");
    let mut releases: Vec<String> = fs::read_dir(&modules)
        .with_context(|| format!("{} has no lib/modules", root.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    anyhow::ensure!(
        releases.len() == 1,
        "expected one kernel release in {}, found {releases:?}",
        modules.display()
    );
    Ok(releases.pop().expect("one"))
}

fn load(label: &str, dir: &Path) -> anyhow::Result<Kernel> {
    let file = dir
        .file_name()
        .expect("cache entry")
        .to_string_lossy()
        .into_owned();
    let (package, version) = file
        .split_once('_')
        .with_context(|| format!("unexpected cache entry {}", dir.display()))?;
    let kernel = Kernel {
        label: label.to_string(),
        package: package.to_string(),
        version: version.to_string(),
        release: release_of(dir)?,
        root: dir.to_path_buf(),
    };
    anyhow::ensure!(
        kernel.vmlinuz().exists(),
        "{} has no kernel image at {}",
        kernel.package,
        kernel.vmlinuz().display()
    );
    Ok(kernel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_match_only_the_generic_flavour() {
        let (s61, s612) = (&SERIES[0], &SERIES[1]);
        assert!(s61.matches("linux-image-6.1.0-50-amd64"));
        assert!(!s61.matches("linux-image-6.1.0-50-cloud-amd64"));
        assert!(!s61.matches("linux-image-6.1.0-50-rt-amd64"));
        assert!(!s61.matches("linux-image-6.1.0-50-amd64-dbg"));
        assert!(!s61.matches("linux-image-6.1.0-50-amd64-unsigned"));
        assert!(s612.matches("linux-image-6.12.117+deb12-amd64"));
        assert!(s612.matches("linux-image-6.12.38+deb13-amd64"));
        assert!(!s612.matches("linux-image-6.12.117+deb12-cloud-amd64"));
        assert!(!s612.matches("linux-image-6.12.117+deb12-rt-amd64"));
        assert!(!s61.matches("linux-image-6.12.117+deb12-amd64"));
    }

    #[test]
    fn newest_by_numbers() {
        let mut v = [
            "linux-image-6.12.99+deb12-amd64",
            "linux-image-6.12.117+deb12-amd64",
            "linux-image-6.12.101+deb12-amd64",
        ];
        v.sort_by_key(|n| numbers(n));
        assert_eq!(v.last(), Some(&"linux-image-6.12.117+deb12-amd64"));
    }
}

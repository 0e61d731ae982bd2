//! CrowdSec for the bouncer tests: Debian's `crowdsec` package, fetched
//! with `apt-get download` and unpacked with `dpkg-deb -x` into
//! `~/.cache/blocker/crowdsec/VERSION/`, never installed. Installing it
//! fails here: its post-install step registers the machine with CrowdSec's
//! online Central API. The tests only need the two binaries, `crowdsec`
//! (run with `-no-cs`: the Local API alone, offline) and `cscli`.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{
    bootstrap,
    util::{note, run},
    vm::kernel,
};

/// Debian's package name.
const PACKAGE: &str = "crowdsec";

/// The variable that tells the tests where the unpacked package is (the
/// directory holding `usr/bin/crowdsec`).
pub const ROOT_ENV: &str = "BLOCKER_CROWDSEC_ROOT";

/// Marks a completely unpacked package directory.
const STAMP: &str = ".unpacked";

fn cache() -> PathBuf {
    bootstrap::cache_dir().join("crowdsec")
}

/// The unpacked package, downloading it if the cache lacks apt's
/// candidate version (or apt cannot answer and nothing is cached).
pub fn ensure() -> anyhow::Result<PathBuf> {
    let cache = cache();
    let version = match kernel::candidate_version(PACKAGE) {
        Ok(Some(v)) => Some(v),
        _ => {
            note("apt knows no crowdsec package yet; refreshing the lists (apt-get update)");
            let _ = run(Command::new("apt-get").args(["update", "-q"]));
            kernel::candidate_version(PACKAGE).ok().flatten()
        }
    };
    let Some(version) = version else {
        return newest_cached(&cache).with_context(|| {
            format!(
                "apt offers no {PACKAGE} package and none is cached in {}; \
                 is a Debian 12 (bookworm) apt source configured?",
                cache.display()
            )
        });
    };
    let dir = cache.join(&version);
    if dir.join(STAMP).exists() {
        return Ok(dir);
    }
    note(&format!(
        "downloading Debian's {PACKAGE} {version} for the CrowdSec bouncer tests \
         (apt-get download and dpkg-deb -x: installing it would register with the online Central API)"
    ));
    let deb = kernel::download(&cache.join("downloads"), PACKAGE, &version)?;
    let unpacked = unpack(&deb, &dir);
    let _ = fs::remove_file(&deb);
    unpacked?;
    // Older versions are dead weight now.
    for e in fs::read_dir(&cache)?.flatten() {
        let p = e.path();
        if p != dir && p.join(STAMP).exists() {
            let _ = fs::remove_dir_all(p);
        }
    }
    Ok(dir)
}

fn unpack(deb: &Path, dir: &Path) -> anyhow::Result<()> {
    let partial = dir.with_extension("partial");
    let _ = fs::remove_dir_all(&partial);
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&partial))?;
    for bin in ["usr/bin/crowdsec", "usr/bin/cscli"] {
        if !partial.join(bin).exists() {
            bail!("{} has no {bin}", deb.display());
        }
    }
    let _ = fs::remove_dir_all(dir);
    fs::rename(&partial, dir)?;
    fs::write(dir.join(STAMP), b"")?;
    Ok(())
}

fn newest_cached(cache: &Path) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(cache)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(STAMP).exists())
        .collect();
    dirs.sort();
    let dir = dirs.pop()?;
    note(&format!(
        "apt offers no {PACKAGE} package; using the cached {}",
        dir.display()
    ));
    Some(dir)
}

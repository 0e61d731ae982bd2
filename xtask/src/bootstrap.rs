//! Installs what building and testing blocker needs, idempotently: a quick
//! no-op when everything is already there.
//!
//! - the nightly toolchain's `rust-src` (the eBPF crate builds `core` for
//!   bpfel with `-Z build-std`);
//! - `bpf-linker`, built against the nightly's own libLLVM, because there is
//!   no prebuilt download for this LLVM and linking must use the same LLVM
//!   that produced the bitcode;
//! - `cargo-fuzz`, pinned, for the fuzz targets in `tests/fuzz/`;
//! - Debian packages the tests, demo and benchmarks drive (`ip`, `ping`,
//!   `bpftool`, `hping3`, ...), when running as root with apt; otherwise the
//!   exact command to run is printed.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::util::{cmd_output, is_root, note, run};

/// bpf-linker release known to build against LLVM 22 here.
const BPF_LINKER_VERSION: &str = "0.13.0";

/// cargo-fuzz release `cargo xtask fuzz` drives (its flags and output are
/// what `fuzz.rs` relies on).
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Debian packages the test suite needs, with the reason for each.
pub const TEST_PACKAGES: &[(&str, &str)] = &[
    ("iproute2", "`ip` builds the network-namespace labs"),
    ("iputils-ping", "`ping` checks ICMP is dropped and passed"),
    (
        "bpftool",
        "the tests check `bpftool map dump` prints formatted keys",
    ),
    ("hping3", "`hping3 -S -w 0` sends zero-window SYN floods"),
    (
        "util-linux",
        "`nsenter` runs blocker inside a namespace with the host's bpffs",
    ),
    (
        "nats-server",
        "the fleet tests share decisions through a real NATS JetStream server",
    ),
    (
        "openssl",
        "the fleet's TLS test makes a CA and a server certificate with the `openssl` CLI",
    ),
    (
        "prometheus",
        "`promtool check metrics` lints a scrape; a real `prometheus` scrapes the daemon",
    ),
    (
        "tmux",
        "`blocker top` is driven under tmux (send-keys, capture-pane)",
    ),
    (
        "fail2ban",
        "the fail2ban test runs the real fail2ban-server with the shipped action",
    ),
    (
        "systemd",
        "`systemd-analyze verify` and `security` check packaging/systemd/blocker.service",
    ),
    (
        "python3-venv",
        "kubernetes-validate (PyPI) checks the manifests from a venv: Debian's pip refuses system-wide installs (PEP 668)",
    ),
];

/// The PyPI validator of the Kubernetes manifests, pinned: its bundled
/// schemas decide what passes.
const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";

/// Installs `kubernetes-validate` into a venv under the target dir (Debian 12's
/// pip refuses to install into the system Python: externally-managed-environment,
/// PEP 668) and returns the path of its command.
pub fn kubernetes_validate() -> anyhow::Result<PathBuf> {
    let venv = crate::compile::target_dir().join("tools/k8s-venv");
    let bin = venv.join("bin/kubernetes-validate");
    if Command::new(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Ok(bin);
    }
    note(&format!(
        "installing {KUBERNETES_VALIDATE} into {}: the tests validate the Kubernetes manifests with it",
        venv.display()
    ));
    // Debian's python3, not whatever python3 is first on PATH (a pyenv shim
    // may have no venv module).
    let python = if Path::new("/usr/bin/python3").exists() {
        PathBuf::from("/usr/bin/python3")
    } else {
        PathBuf::from("python3")
    };
    run(Command::new(&python).args(["-m", "venv"]).arg(&venv))
        .context("creating the venv for kubernetes-validate (apt-get install python3-venv)")?;
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        KUBERNETES_VALIDATE,
    ]))
    .context("pip install kubernetes-validate")?;
    Ok(bin)
}

/// Extra packages for `cargo xtask bench`.
pub const BENCH_PACKAGES: &[(&str, &str)] = &[
    (
        "netsniff-ng",
        "`trafgen` is the fastest packet generator that works here",
    ),
    (
        "xdp-tools",
        "`xdp-filter` is the peer blocker is measured against",
    ),
    ("iptables", "the iptables baseline"),
    (
        "nftables",
        "the nftables-set baseline, and `nft -f` of a million addresses",
    ),
    (
        "ipset",
        "`ipset restore` of a million addresses, the bulk-load baseline",
    ),
];

/// Everything the eBPF build needs. Returns the directory holding bpf-linker.
pub fn toolchain() -> anyhow::Result<PathBuf> {
    ensure_nightly()?;
    ensure_rust_src()?;
    ensure_bpf_linker()
}

fn nightly_sysroot() -> anyhow::Result<PathBuf> {
    let out = cmd_output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
    Ok(PathBuf::from(out.trim()))
}

fn ensure_nightly() -> anyhow::Result<()> {
    let list = cmd_output(Command::new("rustup").args(["toolchain", "list"]))
        .context("rustup is required to build the eBPF programs (https://rustup.rs)")?;
    if list.lines().any(|l| l.starts_with("nightly")) {
        return Ok(());
    }
    note("installing the nightly toolchain: the eBPF crate needs -Z build-std for bpfel");
    run(Command::new("rustup").args([
        "toolchain",
        "install",
        "nightly",
        "--profile",
        "minimal",
        "--component",
        "rust-src,clippy,rustfmt",
    ]))
}

fn ensure_rust_src() -> anyhow::Result<()> {
    let core = nightly_sysroot()?.join("lib/rustlib/src/rust/library/core/Cargo.toml");
    if core.exists() {
        return Ok(());
    }
    note("installing rust-src for nightly: `core` is compiled from source for the bpfel target");
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
}

/// The nightly's libLLVM file name (e.g. `libLLVM.so.22.1-rust-1.97.0-nightly`)
/// and LLVM major version. Detected, never hard-coded: a nightly update
/// renames the file.
fn nightly_llvm() -> anyhow::Result<(PathBuf, String, u32)> {
    let sysroot = nightly_sysroot()?;
    let lib = sysroot.join("lib");
    let file = std::fs::read_dir(&lib)
        .with_context(|| format!("reading {}", lib.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("libLLVM") && n.contains(".so"))
        // Prefer the versioned soname, which is what the linker records.
        .max_by_key(|n| n.starts_with("libLLVM.so."))
        .with_context(|| {
            format!(
                "no libLLVM in {}; is the nightly toolchain complete?",
                lib.display()
            )
        })?;
    let vv = cmd_output(Command::new("rustc").args(["+nightly", "-vV"]))?;
    let major = vv
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.trim().parse::<u32>().ok())
        .context("`rustc +nightly -vV` printed no LLVM version")?;
    Ok((lib.join(&file), file, major))
}

/// `~/.cache/blocker` (or under `$XDG_CACHE_HOME`): what xtask builds and downloads once.
pub fn cache_dir() -> PathBuf {
    env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("blocker")
}

fn ensure_bpf_linker() -> anyhow::Result<PathBuf> {
    let (llvm_lib, llvm_file, major) = nightly_llvm()?;
    // One install per LLVM build, so a nightly update gets a fresh linker and
    // an old one keeps working for the old toolchain.
    let root = cache_dir().join(format!("bpf-linker-{BPF_LINKER_VERSION}-{llvm_file}"));
    let bin_dir = root.join("bin");
    let linker = bin_dir.join("bpf-linker");
    if linker.exists()
        && Command::new(&linker)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    {
        return Ok(bin_dir);
    }
    note(&format!(
        "building bpf-linker {BPF_LINKER_VERSION} against the nightly's libLLVM {major} ({llvm_file}): \
         no prebuilt linker exists for it, and the linker must use the same LLVM as rustc (about a minute)"
    ));
    // A prefix whose lib/libLLVM.so is the nightly's library; the binary's
    // RUNPATH points here, so it also needs the versioned name.
    let prefix = root.join("llvm");
    let prefix_lib = prefix.join("lib");
    std::fs::create_dir_all(&prefix_lib)?;
    for name in ["libLLVM.so", llvm_file.as_str()] {
        let link = prefix_lib.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&llvm_lib, &link)
            .with_context(|| format!("linking {}", link.display()))?;
    }
    let mut install = Command::new(cargo());
    install
        .args([
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--locked",
        ])
        .args([
            "--no-default-features",
            "--features",
            &format!("llvm-{major}"),
        ])
        .arg("--root")
        .arg(&root)
        .env("LLVM_PREFIX", &prefix);
    run(&mut install).context("building bpf-linker failed")?;
    if !linker.exists() {
        bail!("bpf-linker was not installed at {}", linker.display());
    }
    Ok(bin_dir)
}

/// Installs the pinned `cargo-fuzz` (and the nightly it needs: libFuzzer
/// builds use `-Z sanitizer`) if missing. Returns the directory holding it.
///
/// It goes into a root of its own under the cache, like bpf-linker, not into
/// `~/.cargo/bin`: a developer's own cargo-fuzz of another version stays
/// untouched, and every machine fuzzes with the same version.
pub fn cargo_fuzz() -> anyhow::Result<PathBuf> {
    ensure_nightly()?;
    let root = cache_dir().join(format!("cargo-fuzz-{CARGO_FUZZ_VERSION}"));
    let bin_dir = root.join("bin");
    let bin = bin_dir.join("cargo-fuzz");
    if bin.exists()
        && Command::new(&bin)
            .args(["fuzz", "--version"])
            .output()
            .is_ok_and(|o| o.status.success())
    {
        return Ok(bin_dir);
    }
    note(&format!(
        "installing cargo-fuzz {CARGO_FUZZ_VERSION} into {}: the fuzz targets run through it (about a minute)",
        root.display()
    ));
    let mut install = Command::new(cargo());
    install
        .args([
            "install",
            "cargo-fuzz",
            "--version",
            CARGO_FUZZ_VERSION,
            "--locked",
        ])
        .arg("--root")
        .arg(&root);
    run(&mut install).context("installing cargo-fuzz failed")?;
    if !bin.exists() {
        bail!("cargo-fuzz was not installed at {}", bin.display());
    }
    Ok(bin_dir)
}

/// The cargo that runs us (stable), not whatever is first on PATH.
pub fn cargo() -> PathBuf {
    env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Abbrev}", pkg])
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).starts_with("ii"))
}

/// Installs the Debian packages in `wanted` that are missing.
pub fn packages(wanted: &[(&str, &str)]) -> anyhow::Result<()> {
    let missing: Vec<&(&str, &str)> = wanted.iter().filter(|(p, _)| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = missing.iter().map(|(p, _)| *p).collect();
    let command = format!(
        "apt-get install -y --no-install-recommends {}",
        names.join(" ")
    );
    if !is_root() || !Path::new("/usr/bin/apt-get").exists() {
        for (p, why) in &missing {
            note(&format!("missing Debian package {p}: {why}"));
        }
        bail!("install them first: sudo {command}");
    }
    for (p, why) in &missing {
        note(&format!("installing Debian package {p}: {why}"));
    }
    let install = || {
        let mut c = Command::new("apt-get");
        c.args(["install", "-y", "--no-install-recommends"])
            .args(&names)
            .env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut c)
    };
    if install().is_err() {
        note("refreshing the apt package lists and retrying");
        run(Command::new("apt-get").args(["update", "-q"]))?;
        install()?;
    }
    Ok(())
}

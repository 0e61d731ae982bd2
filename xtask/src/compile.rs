//! Building the eBPF object and the userspace binaries.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context as _;

use crate::{
    bootstrap,
    util::{note, run},
};

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

pub fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

/// Separate target dir for the bpfel build: its -Z build-std and rustflags
/// would otherwise invalidate the host build cache on every switch.
fn ebpf_target_dir() -> PathBuf {
    target_dir().join("bpf")
}

/// A `cargo` running on the nightly toolchain with bpf-linker on PATH.
pub fn nightly_cargo(linker_dir: &Path) -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo"]);
    // We run under stable cargo; make sure nothing of it leaks into the
    // nightly build.
    for var in [
        "RUSTUP_TOOLCHAIN",
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO",
    ] {
        cmd.env_remove(var);
    }
    let path = env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![linker_dir.to_path_buf()];
    paths.extend(env::split_paths(&path));
    cmd.env(
        "PATH",
        env::join_paths(paths).expect("PATH entries are valid"),
    );
    cmd.current_dir(root());
    cmd
}

/// Common arguments of every bpfel cargo invocation.
pub fn ebpf_args(cmd: &mut Command) {
    cmd.args([
        "-p",
        "blocker-ebpf",
        "--release",
        "--target",
        "bpfel-unknown-none",
    ])
    .args(["-Z", "build-std=core"])
    .arg("--target-dir")
    .arg(ebpf_target_dir())
    // Both flags are needed for BTF: debug info to describe the types,
    // and bpf-linker's --btf to emit them, so `bpftool map dump` can
    // format keys and values.
    .env(
        "CARGO_ENCODED_RUSTFLAGS",
        "-Cdebuginfo=2\x1f-Clink-arg=--btf",
    );
}

/// Builds the eBPF object and returns its path.
pub fn ebpf() -> anyhow::Result<PathBuf> {
    let linker_dir = bootstrap::toolchain()?;
    let mut cmd = nightly_cargo(&linker_dir);
    cmd.arg("build");
    ebpf_args(&mut cmd);
    run(&mut cmd).context("building the eBPF programs")?;
    let obj = ebpf_target_dir().join("bpfel-unknown-none/release/blocker");
    anyhow::ensure!(obj.exists(), "eBPF object missing at {}", obj.display());
    Ok(obj)
}

/// Host cargo with the eBPF object to embed.
pub fn host_cargo(obj: &Path) -> Command {
    let mut cmd = Command::new(bootstrap::cargo());
    cmd.current_dir(root()).env("BLOCKER_EBPF_OBJECT", obj);
    cmd
}

/// Builds everything; returns the path of the `blocker` binary.
pub fn all(release: bool) -> anyhow::Result<PathBuf> {
    let obj = ebpf()?;
    let mut cmd = host_cargo(&obj);
    cmd.args(["build", "-p", "blocker", "--bins"]);
    if release {
        cmd.arg("--release");
    }
    run(&mut cmd).context("building blocker")?;
    let bin = target_dir()
        .join(if release { "release" } else { "debug" })
        .join("blocker");
    note(&format!("built {}", bin.display()));
    Ok(bin)
}

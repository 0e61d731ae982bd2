//! Embeds the eBPF object that `cargo xtask` builds.
//!
//! `cargo xtask build|run|test` compile `blocker-ebpf` for bpfel first and set
//! `BLOCKER_EBPF_OBJECT` to the result. A plain `cargo build` without it still
//! compiles (so editors and `cargo check` work), but the binary then refuses
//! to load with a message that says to use `cargo xtask`.
use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo::rerun-if-env-changed=BLOCKER_EBPF_OBJECT");
    println!("cargo::rustc-check-cfg=cfg(blocker_no_ebpf)");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let dest = out.join("blocker.bpf.o");
    match env::var_os("BLOCKER_EBPF_OBJECT") {
        Some(path) => {
            let path = PathBuf::from(path);
            println!("cargo::rerun-if-changed={}", path.display());
            fs::copy(&path, &dest).unwrap_or_else(|e| {
                panic!(
                    "BLOCKER_EBPF_OBJECT={}: {e}; run `cargo xtask build` to build it",
                    path.display()
                )
            });
        }
        None => {
            println!("cargo::rustc-cfg=blocker_no_ebpf");
            fs::write(&dest, []).expect("write empty placeholder object");
        }
    }
}

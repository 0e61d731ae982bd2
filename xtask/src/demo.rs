//! `cargo xtask demo`: builds everything and runs the narrated lab.

use crate::{
    bootstrap, compile,
    util::{is_root, note, run},
};

pub fn run_demo() -> anyhow::Result<()> {
    anyhow::ensure!(
        is_root(),
        "the demo builds network namespaces and attaches XDP; run `sudo -E cargo xtask demo`"
    );
    bootstrap::packages(bootstrap::TEST_PACKAGES)?;
    let bin = compile::all(false)?;
    let obj = compile::ebpf()?;
    note("running the demo lab");
    run(compile::host_cargo(&obj)
        .args([
            "run",
            "--quiet",
            "-p",
            "blocker-tests",
            "--bin",
            "blocker-demo",
        ])
        .env("BLOCKER_BIN", &bin))
}

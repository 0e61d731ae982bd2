//! Running commands and talking to the user.

use std::process::Command;

use anyhow::{Context as _, bail};

/// One line on stderr, prefixed so it stands out from cargo's output.
pub fn note(msg: &str) {
    eprintln!("\x1b[1mxtask:\x1b[0m {msg}");
}

/// Runs `cmd`, inheriting stdio; fails if it exits non-zero.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("starting {}", describe(cmd)))?;
    if !status.success() {
        bail!("{} failed ({status})", describe(cmd));
    }
    Ok(())
}

/// Runs `cmd` and returns its stdout; fails if it exits non-zero.
pub fn cmd_output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("starting {}", describe(cmd)))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// SHA-256 of each file, in order (one `sha256sum` run: much faster than
/// hashing in xtask's unoptimized build).
pub fn sha256_files(paths: &[std::path::PathBuf]) -> anyhow::Result<Vec<String>> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let out = cmd_output(Command::new("sha256sum").arg("--").args(paths))?;
    let hashes: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
        .collect();
    anyhow::ensure!(
        hashes.len() == paths.len(),
        "sha256sum printed {} hashes for {} files",
        hashes.len(),
        paths.len()
    );
    Ok(hashes)
}

/// SHA-256 of `data`, hex.
pub fn sha256_bytes(data: &[u8]) -> anyhow::Result<String> {
    use std::io::Write as _;
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting sha256sum")?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(data)
        .context("writing to sha256sum")?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("sha256sum failed ({})", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

//! `blocker docs DIR` (hidden): writes the man pages (one per subcommand),
//! the shell completions and the configuration reference, all generated from
//! the code. `cargo xtask docs` runs it into `docs/`; the test below fails
//! when the checked-in files differ from what the code generates.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::CommandFactory as _;

use super::Cli;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to write man/, completions/ and config.md into.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<std::process::ExitCode> {
    for path in generate(&args.dir)? {
        println!("{}", path.display());
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// The completion scripts, by file name (the names the shells look up).
const SHELLS: [(clap_complete::Shell, &str); 3] = [
    (clap_complete::Shell::Bash, "blocker.bash"),
    (clap_complete::Shell::Zsh, "_blocker"),
    (clap_complete::Shell::Fish, "blocker.fish"),
];

/// Writes every generated document under `dir`; returns their paths.
pub fn generate(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    for d in [&man, &completions] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    // One page per (visible) subcommand, blocker-ban.1 and so on; the top
    // page lists them under SUBCOMMANDS.
    clap_mangen::generate_to(Cli::command(), &man)
        .with_context(|| format!("writing man pages to {}", man.display()))?;
    for (shell, name) in SHELLS {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "blocker", &mut out);
        write(&completions.join(name), &out)?;
    }
    let reference = blocker::config::reference::markdown()
        .context("generating the configuration reference from blocker.toml")?;
    write(&dir.join("config.md"), reference.as_bytes())?;
    let mut paths = files(dir)?;
    paths.sort();
    Ok(paths)
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(files(&path)?);
        } else {
            out.push(path);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HINT: &str = "run `cargo xtask docs` and commit docs/";

    /// The drift test: the checked-in docs/ is exactly what the code generates.
    #[test]
    fn checked_in_docs_match_the_code() {
        let checked_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
        let fresh = std::env::temp_dir().join(format!("blocker-docs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&fresh);
        let generated = generate(&fresh).unwrap();
        let rel = |p: &Path, base: &Path| p.strip_prefix(base).unwrap().to_path_buf();
        let mut problems = Vec::new();
        for path in &generated {
            let name = rel(path, &fresh);
            let want = std::fs::read(path).unwrap();
            match std::fs::read(checked_in.join(&name)) {
                Ok(have) if have == want => {}
                Ok(_) => problems.push(format!("docs/{} differs", name.display())),
                Err(e) => problems.push(format!("docs/{} is missing ({e})", name.display())),
            }
        }
        let want: Vec<PathBuf> = generated.iter().map(|p| rel(p, &fresh)).collect();
        for path in files(&checked_in).unwrap_or_default() {
            let name = rel(&path, &checked_in);
            if !want.contains(&name) {
                problems.push(format!(
                    "docs/{} is no longer generated (remove it)",
                    name.display()
                ));
            }
        }
        let _ = std::fs::remove_dir_all(&fresh);
        assert!(
            problems.is_empty(),
            "the generated docs are out of date with the code: {}; {HINT}",
            problems.join(", ")
        );
    }

    #[test]
    fn a_page_per_subcommand_listed_on_the_top_page() {
        let dir = std::env::temp_dir().join(format!("blocker-man-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        generate(&dir).unwrap();
        let top = std::fs::read_to_string(dir.join("man/blocker.1")).unwrap();
        for sub in Cli::command()
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
        {
            let page = dir.join(format!("man/blocker-{}.1", sub.get_name()));
            assert!(page.exists(), "no man page {}", page.display());
            assert!(
                top.contains(&format!(
                    "blocker\\-{}(1)",
                    sub.get_name().replace('-', "\\-")
                )),
                "blocker.1 does not list {}",
                sub.get_name()
            );
        }
        assert!(
            !dir.join("man/blocker-docs.1").exists(),
            "hidden commands get no page"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

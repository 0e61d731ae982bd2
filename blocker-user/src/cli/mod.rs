//! Command-line interface: a clap `Commands` enum, one module per
//! subcommand. Every invocation works against the pinned state, with or
//! without a running daemon.

mod ban;
mod config;
mod debate;
mod debates;
mod detach;
mod docs;
mod export;
mod import;
mod list;
mod output;
mod policy;
mod run;
mod stats;
mod status;
mod top;
mod transcript;
mod unban;
mod zero_window;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context as _;
use blocker::{config::Config, kernel::pins::PinDir};
use clap::{Args, CommandFactory, Parser, Subcommand};

/// A kernel-side IP blocker: XDP drops packets from banned addresses before
/// the kernel allocates anything for them.
///
/// State lives in pinned BPF maps, so every command works against the
/// running program, with or without the daemon. Inspect it with this tool or
/// with `bpftool map dump pinned /sys/fs/bpf/blocker/BLOCK_V4`.
#[derive(Debug, Parser)]
#[command(
    name = "blocker",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Commands,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file (TOML). Without it, /etc/blocker/blocker.toml is
    /// read if it exists.
    #[arg(long, global = true, env = "BLOCKER_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// bpffs directory of blocker's pinned maps and links [default: /sys/fs/bpf/blocker].
    #[arg(long, global = true, env = "BLOCKER_PIN_DIR", value_name = "DIR")]
    pin_dir: Option<PathBuf>,
    /// Directory of the SQLite journal and daemon status [default: /var/lib/blocker].
    #[arg(long, global = true, env = "BLOCKER_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// More logging: -v debug, -vv trace (RUST_LOG overrides).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Debug, Subcommand)]
enum Commands {
    Run(run::Args),
    Detach(detach::Args),
    /// Drop all packets from addresses or CIDR prefixes.
    ///
    /// The rule goes to the journal and the kernel map at once and applies
    /// to the next packet, with or without a running daemon. The allowlist
    /// wins over bans.
    ///
    /// Example: blocker ban 203.0.113.7 198.51.100.0/24 --ttl 1h --reason "port scan"
    Ban(ban::Args),
    /// Remove bans (exact addresses or prefixes, as they were banned).
    ///
    /// Example: blocker unban 203.0.113.7
    Unban(unban::Args),
    /// Always pass packets from addresses or CIDR prefixes, before any ban.
    ///
    /// Example: blocker allow 192.0.2.0/24 --reason "office"
    Allow(ban::Args),
    /// Remove allowlist entries.
    ///
    /// Example: blocker disallow 192.0.2.0/24
    Disallow(unban::Args),
    List(list::Args),
    Stats(stats::Args),
    ZeroWindow(zero_window::Args),
    Policy(policy::Args),
    Export(export::Args),
    Import(import::Args),
    Status(status::Args),
    Top(top::Args),
    Debate(debate::Args),
    Debates(debates::Args),
    Config(config::Args),
    /// Print shell completions.
    #[command(hide = true)]
    Completions {
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    #[command(hide = true)]
    Man,
    /// Write the man pages, completions and configuration reference into a
    /// directory (what `cargo xtask docs` checks in under docs/).
    #[command(hide = true)]
    Docs(docs::Args),
}

/// Settings every subcommand resolves the same way: flag, then config file,
/// then default.
pub struct Context {
    pub config: Config,
    pub pins: PinDir,
    pub state_dir: PathBuf,
    /// Where `config` came from, to read it again (`blocker run` on SIGHUP).
    pub source: ConfigSource,
}

/// The configuration file and the directory flags over it.
#[derive(Clone, Debug)]
pub struct ConfigSource {
    pub path: PathBuf,
    /// Named with `--config`: a missing file is an error, not the defaults.
    pub required: bool,
    pin_dir: Option<PathBuf>,
    state_dir: Option<PathBuf>,
}

impl ConfigSource {
    /// Puts the `--pin-dir`/`--state-dir` flags over a loaded file.
    pub fn apply_dirs(&self, config: &mut Config) {
        if let Some(dir) = &self.pin_dir {
            config.pin_dir = dir.clone();
        }
        if let Some(dir) = &self.state_dir {
            config.state_dir = dir.clone();
        }
    }
}

impl GlobalArgs {
    fn context(&self) -> anyhow::Result<Context> {
        let source = ConfigSource {
            path: self
                .config
                .clone()
                .unwrap_or_else(|| Path::new(blocker::config::DEFAULT_PATH).to_owned()),
            required: self.config.is_some(),
            pin_dir: self.pin_dir.clone(),
            state_dir: self.state_dir.clone(),
        };
        let mut config = Config::load(&source.path, source.required)?;
        source.apply_dirs(&mut config);
        Ok(Context {
            pins: PinDir::new(&config.pin_dir),
            state_dir: config.state_dir.clone(),
            config,
            source,
        })
    }
}

/// How the council is made up, for `run` and `debate` (over the config).
#[derive(Debug, Args)]
pub struct CouncilArgs {
    /// What plays every role: rules (offline) or llm [default: from config, else rules].
    #[arg(long, value_parser = choice_arg::<blocker::config::AgentKind>(), value_name = "KIND")]
    agents: Option<blocker::config::AgentKind>,
    /// Base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:11434/v1
    /// [default: from config, else $OPENAI_BASE_URL, else OpenAI's]. The key
    /// is read from $OPENAI_API_KEY.
    #[arg(long, value_name = "URL")]
    llm_base_url: Option<String>,
    /// Model of the LLM agents [default: from config, else gpt-4o-mini].
    #[arg(long, value_name = "NAME")]
    model: Option<String>,
    /// Rounds at most (2 to 10) [default: from config, else 4].
    #[arg(long, value_name = "N")]
    max_debate_rounds: Option<u32>,
}

impl CouncilArgs {
    /// Merges the flags into `config` and checks the result.
    pub fn apply(&self, config: &mut Config) -> anyhow::Result<()> {
        if let Some(kind) = self.agents {
            config.council.agents = kind;
        }
        if let Some(url) = &self.llm_base_url {
            config.council.llm.base_url = url.clone();
        }
        if let Some(model) = &self.model {
            config.council.llm.model = model.clone();
        }
        if let Some(n) = self.max_debate_rounds {
            config.council.max_rounds = n;
        }
        config.validate().map_err(UsageError)?;
        Ok(())
    }
}

/// An error in what the user asked for (exit status 2, like clap's own).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn init_logging(verbose: u8, daemon: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match (verbose, daemon) {
        (0, true) => "info",
        (0, false) => "warn",
        (1, _) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(verbose > 0)
        .init();
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(
        cli.global.verbose,
        matches!(cli.command, Commands::Run(_) | Commands::Debate(_)),
    );
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    use blocker::rule::List;
    match cli.command {
        Commands::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "blocker",
                &mut std::io::stdout(),
            );
            return Ok(ExitCode::SUCCESS);
        }
        Commands::Man => {
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .context("writing the man page")?;
            return Ok(ExitCode::SUCCESS);
        }
        Commands::Docs(args) => return docs::run(args),
        _ => {}
    }
    let ctx = cli.global.context()?;
    match cli.command {
        Commands::Run(args) => run::run(&ctx, args),
        Commands::Detach(args) => detach::run(&ctx, args),
        Commands::Ban(args) => ban::run(&ctx, args, List::Block),
        Commands::Allow(args) => ban::run(&ctx, args, List::Allow),
        Commands::Unban(args) => unban::run(&ctx, args, List::Block),
        Commands::Disallow(args) => unban::run(&ctx, args, List::Allow),
        Commands::List(args) => list::run(&ctx, args),
        Commands::Stats(args) => stats::run(&ctx, args),
        Commands::ZeroWindow(args) => zero_window::run(&ctx, args),
        Commands::Policy(args) => policy::run(&ctx, args),
        Commands::Export(args) => export::run(&ctx, args),
        Commands::Import(args) => import::run(&ctx, args),
        Commands::Status(args) => status::run(&ctx, args),
        Commands::Top(args) => top::run(&ctx, args),
        Commands::Debate(args) => debate::run(&ctx, args),
        Commands::Debates(args) => debates::run(&ctx, args),
        Commands::Config(args) => config::run(&ctx, args),
        Commands::Completions { .. } | Commands::Man | Commands::Docs(_) => {
            unreachable!("handled above")
        }
    }
}

/// clap value parser for addresses and prefixes.
pub fn parse_net_arg(s: &str) -> Result<blocker::addr::IpNet, blocker::addr::AddrError> {
    blocker::addr::parse_net(s)
}

/// clap value parser for a [`Choice`](blocker::choice::Choice) (`--list`,
/// `--xdp-mode`, `--treason-probe`, `--agents`): the possible values and
/// their help come from the type itself, so the rooms below need no clap.
pub fn choice_arg<T: blocker::choice::Choice + Send + Sync>()
-> impl clap::builder::TypedValueParser<Value = T> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser as _};
    PossibleValuesParser::new(
        T::ALL
            .iter()
            .map(|v| PossibleValue::new(v.name()).help(v.help())),
    )
    .map(|s| T::from_name(&s).expect("clap only passes the possible values"))
}

/// clap value parser for TTLs.
pub fn parse_ttl_arg(s: &str) -> Result<blocker::ttl::Ttl, blocker::ttl::TtlError> {
    blocker::ttl::parse_ttl(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("blocker").chain(args.iter().copied()))
    }

    #[test]
    fn parses_ban_with_ttl_and_reason() {
        let cli = parse(&[
            "ban",
            "198.51.100.7",
            "203.0.113.0/24",
            "--ttl",
            "1h",
            "--reason",
            "scan",
        ])
        .unwrap();
        let Commands::Ban(args) = cli.command else {
            panic!("not ban")
        };
        assert_eq!(args.targets.len(), 2);
        assert_eq!(args.ttl, Some(std::time::Duration::from_secs(3600)));
        assert_eq!(args.reason.as_deref(), Some("scan"));
    }

    #[test]
    fn invalid_arguments_exit_with_status_2() {
        for bad in [
            vec!["ban", "not-an-ip"],
            vec!["ban", "10.0.0.5/24"],
            vec!["ban", "198.51.100.7", "--ttl", "soon"],
            vec!["ban"],
            vec!["run"],
            vec!["run", "--iface", "eth0", "--xdp-mode", "turbo"],
            vec!["zero-window", "--top", "-3"],
            vec!["frobnicate"],
        ] {
            let err = parse(&bad).expect_err(&format!("{bad:?} parsed"));
            assert_eq!(err.exit_code(), 2, "{bad:?}: {err}");
        }
    }

    #[test]
    fn host_bits_error_suggests_the_prefix() {
        let err = parse(&["ban", "10.0.0.5/24"]).unwrap_err().to_string();
        assert!(err.contains("did you mean 10.0.0.0/24"), "{err}");
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = parse(&["list", "--pin-dir", "/sys/fs/bpf/x", "--json"]).unwrap();
        assert_eq!(
            cli.global.pin_dir.as_deref(),
            Some(Path::new("/sys/fs/bpf/x"))
        );
    }
}

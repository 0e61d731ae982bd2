//! `blocker config`

use std::process::ExitCode;

use super::Context;

/// Print the documented default configuration, or the one in effect.
///
/// Example: blocker config default > /etc/blocker/blocker.toml
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// The documented defaults (a good starting file).
    Default,
    /// The configuration in effect: file, then flags.
    Show,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    match args.what {
        What::Default => print!("{}", blocker::config::DEFAULT_TOML),
        What::Show => print!("{}", toml::to_string_pretty(&ctx.config)?),
    }
    Ok(ExitCode::SUCCESS)
}

//! `blocker run`

use std::process::ExitCode;

use anyhow::Context as _;
use blocker::{
    config::{Config, XdpMode},
    daemon,
    kernel::probes::ProbeMode,
};

use super::{Context, CouncilArgs, choice_arg};

/// Load blocker, attach XDP to the interfaces and run in the foreground
/// until SIGINT or SIGTERM.
///
/// SIGTERM/SIGINT stop it cleanly, also during start-up (nothing is left
/// half-attached). SIGHUP reads the config file again and applies the
/// [guard] settings (trusted list, allowlist) and [council] settings
/// without reloading the programs, logging each changed setting; settings
/// that need a restart are named and ignored, an invalid file is rejected.
///
/// The maps and the XDP links are pinned under the pin directory, so killing
/// the daemon (even with SIGKILL) leaves enforcement in place; running it
/// again reuses the pinned maps and swaps the new program in atomically.
///
/// Example: blocker run --iface eth0 --xdp-mode auto
///
/// Example: blocker run --iface eth0 --metrics-addr 9100
///
/// Example: OPENAI_API_KEY=... blocker run --iface eth0 --agents llm --model gpt-4o-mini --dry-run
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Interface to protect (repeat for several).
    #[arg(long = "iface", short = 'i', required = true, value_name = "IFACE")]
    interfaces: Vec<String>,
    /// XDP attach mode: auto tries driver (native) mode and falls back to
    /// skb (generic) mode [default: from config, else auto].
    #[arg(long, value_parser = choice_arg::<XdpMode>(), value_name = "MODE")]
    xdp_mode: Option<XdpMode>,
    /// How the treason probes attach: auto tries kprobes and falls back to
    /// tracepoints [default: from config, else auto].
    #[arg(long, value_parser = choice_arg::<ProbeMode>(), value_name = "MODE")]
    treason_probe: Option<ProbeMode>,
    /// Follow this Suricata eve.json for IDS alerts.
    #[arg(long, value_name = "FILE")]
    eve_json: Option<std::path::PathBuf>,
    /// Do not read /dev/kmsg.
    #[arg(long)]
    no_kmsg: bool,
    /// Serve Prometheus metrics (and /healthz, /readyz) on this address; a
    /// bare port means 127.0.0.1:PORT [default: from config, else off].
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<String>,
    /// Log what the council's verdicts would do; touch no map.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    council: CouncilArgs,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        interfaces,
        xdp_mode,
        treason_probe,
        eve_json,
        no_kmsg,
        metrics_addr,
        dry_run,
        council,
    } = args;
    let source = ctx.source.clone();
    // The flags over the file, at start and again on every SIGHUP (so a
    // reload does not undo them).
    let flags = move |config: &mut Config| -> anyhow::Result<()> {
        source.apply_dirs(config);
        if let Some(mode) = xdp_mode {
            config.xdp.mode = mode;
        }
        if let Some(mode) = treason_probe {
            config.treason.probe = mode;
        }
        if let Some(path) = &eve_json {
            config.sources.eve_json = path.display().to_string();
        }
        if no_kmsg {
            config.sources.kmsg = false;
        }
        config.daemon.dry_run |= dry_run;
        if let Some(addr) = &metrics_addr {
            config.metrics.addr = addr.clone();
        }
        council.apply(config)
    };
    let mut config = ctx.config.clone();
    flags(&mut config)?;
    let opts = daemon::RunOptions {
        interfaces,
        xdp_mode: config.xdp.mode,
        config,
        reload: Some(daemon::Reload {
            path: ctx.source.path.clone(),
            required: ctx.source.required,
            overrides: std::sync::Arc::new(move |c| flags(c).map_err(|e| format!("{e:#}"))),
        }),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        // First: from here on no signal can cut a start-up step in half.
        let signals = daemon::Signals::install().context("installing the signal handlers")?;
        daemon::run(opts, signals)
            .await
            .map_err(anyhow::Error::from)
    })?;
    Ok(ExitCode::SUCCESS)
}

//! `blocker run`

use std::process::ExitCode;

use anyhow::Context as _;
use blocker::{config::XdpMode, daemon, kernel::probes::ProbeMode};

use super::{Context, CouncilArgs, choice_arg};

/// Load blocker, attach XDP to the interfaces and run in the foreground
/// until SIGINT or SIGTERM.
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
    let mut config = ctx.config.clone();
    if let Some(mode) = args.treason_probe {
        config.treason.probe = mode;
    }
    if let Some(path) = args.eve_json {
        config.sources.eve_json = path.display().to_string();
    }
    if args.no_kmsg {
        config.sources.kmsg = false;
    }
    config.daemon.dry_run |= args.dry_run;
    if let Some(addr) = args.metrics_addr {
        config.metrics.addr = addr;
    }
    args.council.apply(&mut config)?;
    let opts = daemon::RunOptions {
        interfaces: args.interfaces,
        xdp_mode: args.xdp_mode.unwrap_or(ctx.config.xdp.mode),
        config,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(daemon::run(opts, shutdown_signal()))?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}

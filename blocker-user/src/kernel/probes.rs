//! Attaching the treason probes: kprobes where the kernel has them, the
//! tracepoint fallback where it does not.
//!
//! Our own machines run without `CONFIG_KPROBES` (attaching fails with
//! `/sys/bus/event_source/devices/kprobe/type: No such file or directory`);
//! distribution kernels have them. `auto` tries kprobes first and, when that
//! fails, logs one line with the reason and the fallback chosen.

use aya::{
    Ebpf,
    programs::{KProbe, TracePoint},
};
use blocker_common::{SockOffsets, TracepointOffsets, programs as p};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::{kernel::offsets, kernel::tracefs};

/// `--treason-probe`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeMode {
    /// kprobes, falling back to tracepoints.
    #[default]
    Auto,
    /// kprobes on tcp_retransmit_timer and tcp_send_probe0 only.
    Kprobe,
    /// The tcp:tcp_retransmit_skb and tcp:tcp_probe tracepoints only.
    Tracepoint,
    /// No probes (XDP, kmsg and IDS evidence only).
    Off,
}

impl crate::choice::Choice for ProbeMode {
    const ALL: &'static [Self] = &[Self::Auto, Self::Kprobe, Self::Tracepoint, Self::Off];

    fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Kprobe => "kprobe",
            Self::Tracepoint => "tracepoint",
            Self::Off => "off",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Self::Auto => "kprobes, falling back to tracepoints",
            Self::Kprobe => "kprobes on tcp_retransmit_timer and tcp_send_probe0 only",
            Self::Tracepoint => "The tcp:tcp_retransmit_skb and tcp:tcp_probe tracepoints only",
            Self::Off => "No probes (XDP, kmsg and IDS evidence only)",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "the treason probes need the kernel's BTF ({0}); use a kernel with CONFIG_DEBUG_INFO_BTF, or run with --treason-probe off"
    )]
    Btf(#[from] offsets::BtfError),
    #[error(
        "the tracepoint fallback cannot lay out the tcp tracepoint records ({0}); run with --treason-probe kprobe or off"
    )]
    TracepointRecords(#[source] offsets::BtfError),
    #[error("attaching the kprobes failed ({0}); retry with --treason-probe tracepoint (or auto)")]
    Kprobe(String),
    #[error("attaching the tracepoints failed ({0}); retry with --treason-probe off")]
    Tracepoint(String),
}

/// Offsets resolved from the running kernel before the object is loaded.
#[derive(Clone, Copy, Debug, Default)]
pub struct Offsets {
    pub sock: SockOffsets,
    pub tracepoints: TracepointOffsets,
}

/// What is attached, for logs and `blocker status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeStatus {
    pub requested: ProbeMode,
    /// "kprobe", "tracepoint" or "off".
    pub active: String,
    /// e.g. `kprobe:tcp_retransmit_timer`.
    pub attached: Vec<String>,
    /// Why the fallback was taken, if it was.
    pub fallback_reason: Option<String>,
}

/// Resolves the offsets `mode` needs. With `auto`, a tracepoint problem is not
/// fatal yet (kprobes may work); it surfaces if the fallback is needed.
pub fn prepare(mode: ProbeMode) -> Result<Offsets, ProbeError> {
    if mode == ProbeMode::Off {
        return Ok(Offsets::default());
    }
    let kernel_btf = offsets::Btf::from_sys_fs()?;
    let sock = offsets::sock_offsets(&kernel_btf)?;
    let tracepoints = match (mode, offsets::tracepoint_offsets(&kernel_btf)) {
        (_, Ok(t)) => t,
        (ProbeMode::Tracepoint, Err(e)) => return Err(ProbeError::TracepointRecords(e)),
        (_, Err(e)) => {
            tracing::debug!("tracepoint offsets unavailable: {e}");
            TracepointOffsets::default()
        }
    };
    Ok(Offsets { sock, tracepoints })
}

/// Attaches the probes `mode` asks for. The object must have been loaded
/// with `offsets` as its globals.
pub fn attach(
    ebpf: &mut Ebpf,
    mode: ProbeMode,
    offsets: &Offsets,
) -> Result<ProbeStatus, ProbeError> {
    let mut status = ProbeStatus {
        requested: mode,
        active: "off".into(),
        ..ProbeStatus::default()
    };
    match mode {
        ProbeMode::Off => {
            info!("treason probes off (--treason-probe off)");
            return Ok(status);
        }
        ProbeMode::Kprobe => {
            status.attached = attach_kprobes(ebpf).map_err(ProbeError::Kprobe)?;
            status.active = "kprobe".into();
        }
        ProbeMode::Tracepoint => {
            status.attached = attach_tracepoints(ebpf, offsets).map_err(ProbeError::Tracepoint)?;
            status.active = "tracepoint".into();
        }
        ProbeMode::Auto => match attach_kprobes(ebpf) {
            Ok(a) => {
                status.attached = a;
                status.active = "kprobe".into();
            }
            Err(reason) => {
                warn!(
                    "kprobes unavailable ({reason}); falling back to tracepoints {}:{} and {}:{}",
                    p::TP_CATEGORY,
                    p::TP_RETRANSMIT_EVENT,
                    p::TP_CATEGORY,
                    p::TP_PROBE_EVENT
                );
                status.fallback_reason = Some(reason);
                status.attached =
                    attach_tracepoints(ebpf, offsets).map_err(ProbeError::Tracepoint)?;
                status.active = "tracepoint".into();
            }
        },
    }
    info!("treason probes attached: {}", status.attached.join(", "));
    Ok(status)
}

fn attach_kprobes(ebpf: &mut Ebpf) -> Result<Vec<String>, String> {
    let mut attached = Vec::new();
    for (prog, func) in [
        (p::KPROBE_RETRANSMIT, p::KPROBE_RETRANSMIT_FN),
        (p::KPROBE_PROBE0, p::KPROBE_PROBE0_FN),
    ] {
        let result = (|| -> Result<(), String> {
            let k: &mut KProbe = ebpf
                .program_mut(prog)
                .ok_or_else(|| format!("program {prog} missing from the object"))?
                .try_into()
                .map_err(|e| format!("{prog}: {e}"))?;
            k.load().map_err(|e| format!("loading {prog}: {e}"))?;
            k.attach(func, 0)
                .map_err(|e| format!("kprobe {func}: {}", error_chain(&e)))?;
            Ok(())
        })();
        if let Err(e) = result {
            // All or nothing: a half-attached kprobe set would hide which
            // evidence path is live. Unloading detaches what did attach.
            for done in [p::KPROBE_RETRANSMIT, p::KPROBE_PROBE0] {
                if let Some(prog) = ebpf.program_mut(done)
                    && let Ok(k) = <&mut KProbe>::try_from(prog)
                {
                    let _ = k.unload();
                }
            }
            return Err(e);
        }
        attached.push(format!("kprobe:{func}"));
    }
    Ok(attached)
}

fn attach_tracepoints(ebpf: &mut Ebpf, offsets: &Offsets) -> Result<Vec<String>, String> {
    if offsets.tracepoints.valid == 0 {
        // `prepare` let this pass under `auto` (kprobes might have worked):
        // say now why the records could not be laid out.
        let why = offsets::Btf::from_sys_fs()
            .map_err(|e| error_chain(&e))
            .and_then(|btf| offsets::tracepoint_offsets(&btf).map_err(|e| error_chain(&e)));
        return Err(why
            .err()
            .unwrap_or_else(|| "field offsets were not resolved before load".into()));
    }
    // aya finds the tracepoints' ids in tracefs, which must be mounted.
    tracefs::ensure().map_err(|e| error_chain(&e))?;
    let mut attached = Vec::new();
    for (prog, event) in [
        (p::TP_RETRANSMIT, p::TP_RETRANSMIT_EVENT),
        (p::TP_PROBE, p::TP_PROBE_EVENT),
    ] {
        let t: &mut TracePoint = ebpf
            .program_mut(prog)
            .ok_or_else(|| format!("program {prog} missing from the object"))?
            .try_into()
            .map_err(|e| format!("{prog}: {e}"))?;
        t.load()
            .map_err(|e| format!("loading {prog}: {}", error_chain(&e)))?;
        t.attach(p::TP_CATEGORY, event)
            .map_err(|e| format!("tracepoint {}:{event}: {}", p::TP_CATEGORY, error_chain(&e)))?;
        attached.push(format!("tracepoint:{}:{event}", p::TP_CATEGORY));
    }
    Ok(attached)
}

/// An error and its sources on one line (aya nests the useful part).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = inner.source();
    }
    s
}

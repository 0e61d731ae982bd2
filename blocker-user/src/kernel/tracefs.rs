//! tracefs: finding (or mounting) it, and reading the layout of tracepoint
//! records from their `format` files, so the tracepoint fallback of the
//! treason probes reads `tcp:tcp_probe` and `tcp:tcp_retransmit_skb` at the
//! offsets of the running kernel.
//!
//! A tracepoint program's context is the raw record the kernel writes for
//! the event, and its layout is only described by
//! `events/<system>/<event>/format` (Documentation/trace/events.rst, "Event
//! formats"): one line per field with its C declaration, byte offset, size
//! and signedness. Fields come and go between kernels (`tcp_probe` gained
//! `skaddr` in 6.9), so nothing is assumed.

use std::{
    io,
    path::{Path, PathBuf},
};

use blocker_common::TracepointOffsets;
use tracing::{debug, info};

use crate::kernel::sys;

/// Where tracefs lives since Linux 4.1 (Documentation/trace/ftrace.rst).
pub const TRACEFS: &str = "/sys/kernel/tracing";
/// The older place: with debugfs mounted, the kernel automounts tracefs
/// here for compatibility.
pub const DEBUGFS_TRACING: &str = "/sys/kernel/debug/tracing";

#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    #[error(
        "tracefs is not mounted and mounting it on {path} failed ({reason}); mount it with `mount -t tracefs tracefs {path}`"
    )]
    Mount { path: PathBuf, reason: String },
    #[error("this kernel has no tracepoint {event} ({path} does not exist)")]
    NoTracepoint { event: String, path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("invalid tracepoint name {0:?}")]
    BadName(String),
    #[error("tracepoint format, line {line}: {reason}")]
    Parse { line: usize, reason: String },
    #[error("expected the format of tracepoint {expected}, got {found}")]
    WrongEvent {
        expected: &'static str,
        found: String,
    },
    #[error("tracepoint {event} has no field {field}{hint}")]
    MissingField {
        event: &'static str,
        field: &'static str,
        hint: &'static str,
    },
    #[error(
        "field {field} of tracepoint {event} is {size} bytes, expected {expected}; the kernel changed its type"
    )]
    FieldSize {
        event: &'static str,
        field: &'static str,
        size: u32,
        expected: u32,
    },
}

/// The tracefs directory, if one is mounted at [`TRACEFS`] or (through
/// debugfs) at [`DEBUGFS_TRACING`], in the order aya looks at them.
pub fn find() -> Option<PathBuf> {
    [TRACEFS, DEBUGFS_TRACING]
        .into_iter()
        .map(Path::new)
        .find(|p| sys::is_tracefs(p).unwrap_or(false))
        .map(Path::to_path_buf)
}

/// The tracefs directory, mounting tracefs on [`TRACEFS`] when none is
/// mounted (minimal systems and containers do not mount it).
///
/// Call this before attaching any tracepoint program: aya's `TracePoint`
/// attach reads `events/<system>/<event>/id` from tracefs, and it looks for
/// tracefs only once per process, caching the answer.
pub fn ensure() -> Result<PathBuf, TracefsError> {
    if let Some(path) = find() {
        return Ok(path);
    }
    let root = Path::new(TRACEFS);
    let mount_err = |reason: String| TracefsError::Mount {
        path: root.to_owned(),
        reason,
    };
    // The kernel creates the mount point itself when it has tracefs
    // (fs/tracefs/inode.c: sysfs_create_mount_point(kernel_kobj,
    // "tracing")); it cannot be created in sysfs by hand.
    if !root.is_dir() {
        return Err(mount_err(
            "the directory does not exist: the kernel was built without tracing support, or /sys is not mounted".into(),
        ));
    }
    sys::mount_tracefs(root).map_err(|e| mount_err(e.to_string()))?;
    info!("mounted tracefs on {}", root.display());
    Ok(root.to_owned())
}

/// One field of a tracepoint record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracepointField {
    pub name: String,
    /// The C declaration as tracefs prints it (`const void * skaddr`,
    /// `__u8 saddr[28]`).
    pub decl: String,
    /// Bytes from the start of the record (the program's context).
    pub offset: u32,
    pub size: u32,
    pub signed: bool,
}

/// The record layout of one tracepoint, from its `format` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracepointFormat {
    /// The event name (`tcp_probe`), without its system.
    pub name: String,
    /// The event id, as `perf_event_open` wants it.
    pub id: Option<u32>,
    /// Fields in record order, the common ones (`common_type`, ...) first.
    pub fields: Vec<TracepointField>,
}

impl TracepointFormat {
    /// Reads `events/<category>/<name>/format` from tracefs, mounting
    /// tracefs first if needed (see [`ensure`]).
    pub fn read(category: &str, name: &str) -> Result<Self, TracefsError> {
        Self::read_in(&ensure()?, category, name)
    }

    /// Reads `events/<category>/<name>/format` under the tracefs directory
    /// `tracefs`.
    pub fn read_in(tracefs: &Path, category: &str, name: &str) -> Result<Self, TracefsError> {
        for part in [category, name] {
            if part.is_empty() || part.contains('/') || part == "." || part == ".." {
                return Err(TracefsError::BadName(part.into()));
            }
        }
        let path = tracefs
            .join("events")
            .join(category)
            .join(name)
            .join("format");
        let text = std::fs::read_to_string(&path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                TracefsError::NoTracepoint {
                    event: format!("{category}:{name}"),
                    path: path.clone(),
                }
            } else {
                TracefsError::Read {
                    path: path.clone(),
                    source,
                }
            }
        })?;
        let format = Self::parse(&text)?;
        debug!("{}: {} fields", path.display(), format.fields.len());
        Ok(format)
    }

    /// Parses the text of a `format` file:
    ///
    /// ```text
    /// name: tcp_probe
    /// ID: 2273
    /// format:
    ///     field:unsigned short common_type;  offset:0;  size:2;  signed:0;
    ///     ...
    ///     field:const void * skaddr;  offset:128;  size:8;  signed:0;
    ///
    /// print fmt: "..."
    /// ```
    ///
    /// The layout is written by `trace_format_show()`/`f_show()` in
    /// kernel/trace/trace_events.c.
    pub fn parse(text: &str) -> Result<Self, TracefsError> {
        let mut name = None;
        let mut id = None;
        let mut fields: Vec<TracepointField> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let err = |reason: String| TracefsError::Parse {
                line: line_no,
                reason,
            };
            let line = line.trim();
            if let Some(v) = line.strip_prefix("name:") {
                name = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("ID:") {
                let v = v.trim();
                id = Some(
                    v.parse()
                        .map_err(|_| err(format!("invalid event id {v:?}")))?,
                );
            } else if line.starts_with("print fmt:") {
                // The rest is the printk format, which may contain anything.
                break;
            } else if line.starts_with("field:") {
                let field = parse_field(line).map_err(err)?;
                if fields.iter().any(|f| f.name == field.name) {
                    return Err(err(format!("duplicate field {}", field.name)));
                }
                fields.push(field);
            }
        }
        let name = name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| TracefsError::Parse {
                line: 1,
                reason: "no `name:` line".into(),
            })?;
        if fields.is_empty() {
            return Err(TracefsError::Parse {
                line: 1,
                reason: format!("no fields in the format of {name}"),
            });
        }
        Ok(Self { name, id, fields })
    }

    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&TracepointField> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// Parses `field:DECL;\toffset:N;\tsize:N;\tsigned:N;`.
fn parse_field(line: &str) -> Result<TracepointField, String> {
    let mut parts = line.split(';').map(str::trim).filter(|p| !p.is_empty());
    let decl = parts
        .next()
        .and_then(|p| p.strip_prefix("field:"))
        .ok_or("expected `field:`")?
        .trim();
    let (mut offset, mut size, mut signed) = (None, None, false);
    for part in parts {
        let (key, value) = part
            .split_once(':')
            .ok_or_else(|| format!("expected `key:value`, got {part:?}"))?;
        let number = || {
            value
                .trim()
                .parse::<u32>()
                .map_err(|_| format!("invalid {key} {value:?}"))
        };
        match key.trim() {
            "offset" => offset = Some(number()?),
            "size" => size = Some(number()?),
            "signed" => signed = number()? != 0,
            // Keys a later kernel may add.
            _ => {}
        }
    }
    let name = decl_name(decl).ok_or_else(|| format!("no field name in {decl:?}"))?;
    Ok(TracepointField {
        name: name.to_owned(),
        decl: decl.to_owned(),
        offset: offset.ok_or_else(|| format!("field {name} has no offset"))?,
        size: size.ok_or_else(|| format!("field {name} has no size"))?,
        signed,
    })
}

/// The identifier a C declaration declares: `skaddr` in `const void *
/// skaddr`, `saddr` in `__u8 saddr[28]`, `name` in `__data_loc char[] name`.
fn decl_name(decl: &str) -> Option<&str> {
    let decl = decl.trim_end();
    let decl = match decl.strip_suffix(']') {
        Some(d) => d[..d.rfind('[')?].trim_end(),
        None => decl,
    };
    let start = decl
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(0, |i| i + 1);
    let name = &decl[start..];
    let first = name.chars().next()?;
    (first.is_ascii_alphabetic() || first == '_').then_some(name)
}

const TCP_PROBE: &str = "tcp:tcp_probe";
const TCP_RETRANSMIT_SKB: &str = "tcp:tcp_retransmit_skb";

/// Offsets of every field [`TracepointOffsets`] describes, from the formats
/// of `tcp:tcp_probe` and `tcp:tcp_retransmit_skb`, with `valid` set.
///
/// Sizes are checked so that a field whose type changed is an error rather
/// than a misread: the sequence numbers and window are `__u32`, the socket
/// pointers `const void *` (8 bytes: the probes run on 64-bit kernels), and
/// the retransmit state an `int`.
pub fn tracepoint_offsets(
    probe: &TracepointFormat,
    retransmit: &TracepointFormat,
) -> Result<TracepointOffsets, TracefsError> {
    for (format, expected) in [(probe, TCP_PROBE), (retransmit, TCP_RETRANSMIT_SKB)] {
        if expected.split_once(':').map(|(_, n)| n) != Some(format.name.as_str()) {
            return Err(TracefsError::WrongEvent {
                expected,
                found: format.name.clone(),
            });
        }
    }
    let field = |format: &TracepointFormat,
                 event: &'static str,
                 name: &'static str,
                 expected: u32,
                 hint: &'static str| {
        let f = format.field(name).ok_or(TracefsError::MissingField {
            event,
            field: name,
            hint,
        })?;
        if f.size != expected {
            return Err(TracefsError::FieldSize {
                event,
                field: name,
                size: f.size,
                expected,
            });
        }
        Ok(f.offset)
    };
    let offsets = TracepointOffsets {
        probe_snd_wnd: field(probe, TCP_PROBE, "snd_wnd", 4, "")?,
        probe_snd_nxt: field(probe, TCP_PROBE, "snd_nxt", 4, "")?,
        probe_snd_una: field(probe, TCP_PROBE, "snd_una", 4, "")?,
        // Commit caabd859c41b ("tcp: Add skb addr and sock addr to
        // arguments of tracepoint tcp_probe."), merged for Linux 6.9.
        probe_skaddr: field(
            probe,
            TCP_PROBE,
            "skaddr",
            8,
            " (it was added in Linux 6.9 by commit caabd859c41b, \"tcp: Add skb addr and sock addr to arguments of tracepoint tcp_probe.\"); this kernel is older, so the tracepoint fallback cannot identify the socket",
        )?,
        retransmit_skaddr: field(retransmit, TCP_RETRANSMIT_SKB, "skaddr", 8, "")?,
        retransmit_state: field(retransmit, TCP_RETRANSMIT_SKB, "state", 4, "")?,
        valid: 1,
        flags: 0,
    };
    debug!("tracepoint field offsets from tracefs: {offsets:?}");
    Ok(offsets)
}

/// Reads both formats from tracefs (mounting it if needed) and returns
/// their offsets.
pub fn read_tracepoint_offsets() -> Result<TracepointOffsets, TracefsError> {
    let root = ensure()?;
    tracepoint_offsets(
        &TracepointFormat::read_in(&root, "tcp", "tcp_probe")?,
        &TracepointFormat::read_in(&root, "tcp", "tcp_retransmit_skb")?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::offsets::Btf;

    const PROBE_6_18: &str = include_str!("../../testdata/tracefs/linux-6.18/tcp_probe.format");
    const RETRANSMIT_6_18: &str =
        include_str!("../../testdata/tracefs/linux-6.18/tcp_retransmit_skb.format");

    fn without_line(text: &str, needle: &str) -> String {
        let out: Vec<&str> = text.lines().filter(|l| !l.contains(needle)).collect();
        assert_ne!(out.len(), text.lines().count(), "{needle} not in fixture");
        out.join("\n")
    }

    #[test]
    fn parses_the_6_18_formats() {
        let probe = TracepointFormat::parse(PROBE_6_18).unwrap();
        assert_eq!(probe.name, "tcp_probe");
        assert_eq!(probe.id, Some(2273));
        assert_eq!(probe.fields.len(), 4 + 17);
        assert_eq!(
            probe.field("common_pid").unwrap(),
            &TracepointField {
                name: "common_pid".into(),
                decl: "int common_pid".into(),
                offset: 4,
                size: 4,
                signed: true,
            }
        );
        let skaddr = probe.field("skaddr").unwrap();
        assert_eq!(skaddr.decl, "const void * skaddr");
        assert_eq!((skaddr.offset, skaddr.size, skaddr.signed), (128, 8, false));
        let saddr = probe.field("saddr").unwrap();
        assert_eq!(
            (saddr.decl.as_str(), saddr.offset, saddr.size),
            ("__u8 saddr[28]", 8, 28)
        );

        let retransmit = TracepointFormat::parse(RETRANSMIT_6_18).unwrap();
        assert_eq!(retransmit.name, "tcp_retransmit_skb");
        let state = retransmit.field("state").unwrap();
        assert_eq!((state.offset, state.size, state.signed), (24, 4, true));

        assert_eq!(
            tracepoint_offsets(&probe, &retransmit).unwrap(),
            TracepointOffsets {
                probe_snd_wnd: 96,
                probe_snd_nxt: 80,
                probe_snd_una: 84,
                probe_skaddr: 128,
                retransmit_skaddr: 16,
                retransmit_state: 24,
                valid: 1,
                flags: 0,
            }
        );
    }

    #[test]
    fn missing_fields_are_named() {
        let retransmit = TracepointFormat::parse(RETRANSMIT_6_18).unwrap();
        // tcp_probe as kernels before 6.9 have it: no skbaddr/skaddr.
        let old = without_line(PROBE_6_18, "skaddr");
        let old = TracepointFormat::parse(&old).unwrap();
        let e = tracepoint_offsets(&old, &retransmit).unwrap_err();
        assert!(
            matches!(
                e,
                TracefsError::MissingField {
                    event: "tcp:tcp_probe",
                    field: "skaddr",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("Linux 6.9"), "{e}");

        let probe = TracepointFormat::parse(PROBE_6_18).unwrap();
        for (text_probe, text_retransmit, event, field) in [
            (
                without_line(PROBE_6_18, "snd_wnd;"),
                RETRANSMIT_6_18.to_owned(),
                "tcp:tcp_probe",
                "snd_wnd",
            ),
            (
                without_line(PROBE_6_18, "snd_una;"),
                RETRANSMIT_6_18.to_owned(),
                "tcp:tcp_probe",
                "snd_una",
            ),
            (
                PROBE_6_18.to_owned(),
                without_line(RETRANSMIT_6_18, "int state;"),
                "tcp:tcp_retransmit_skb",
                "state",
            ),
            (
                PROBE_6_18.to_owned(),
                without_line(RETRANSMIT_6_18, "skaddr;"),
                "tcp:tcp_retransmit_skb",
                "skaddr",
            ),
        ] {
            let p = TracepointFormat::parse(&text_probe).unwrap();
            let r = TracepointFormat::parse(&text_retransmit).unwrap();
            let e = tracepoint_offsets(&p, &r).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with(&format!("tracepoint {event} has no field {field}")),
                "{e}"
            );
        }

        // Swapped arguments.
        let e = tracepoint_offsets(&retransmit, &probe).unwrap_err();
        assert!(matches!(e, TracefsError::WrongEvent { .. }), "{e:?}");
    }

    #[test]
    fn field_sizes_are_checked() {
        let retransmit = TracepointFormat::parse(RETRANSMIT_6_18).unwrap();
        let narrow = PROBE_6_18.replace(
            "field:__u32 snd_wnd;\toffset:96;\tsize:4;",
            "field:__u16 snd_wnd;\toffset:96;\tsize:2;",
        );
        assert_ne!(narrow, PROBE_6_18);
        let e = tracepoint_offsets(&TracepointFormat::parse(&narrow).unwrap(), &retransmit)
            .unwrap_err();
        assert!(
            matches!(
                e,
                TracefsError::FieldSize {
                    field: "snd_wnd",
                    size: 2,
                    expected: 4,
                    ..
                }
            ),
            "{e:?}"
        );
        // A 32-bit kernel's pointers.
        let narrow = PROBE_6_18.replace("offset:128;\tsize:8;", "offset:128;\tsize:4;");
        let e = tracepoint_offsets(&TracepointFormat::parse(&narrow).unwrap(), &retransmit)
            .unwrap_err();
        assert!(
            matches!(
                e,
                TracefsError::FieldSize {
                    field: "skaddr",
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn malformed_formats_are_errors() {
        let parse = |t: &str| TracepointFormat::parse(t).unwrap_err().to_string();
        assert!(parse("").contains("no `name:` line"));
        assert!(parse("name: x\nID: 1\nformat:\n\nprint fmt: \"\"\n").contains("no fields"));
        assert!(parse("name: x\nID: abc\n").contains("invalid event id"));
        let e = parse("name: x\nformat:\n\tfield:int a;\toffset:zero;\tsize:4;\tsigned:1;\n");
        assert!(e.contains("line 3") && e.contains("invalid offset"), "{e}");
        let e = parse("name: x\nformat:\n\tfield:int a;\tsize:4;\tsigned:1;\n");
        assert!(e.contains("field a has no offset"), "{e}");
        let e = parse("name: x\nformat:\n\tfield:int a;\toffset:0;\tsigned:1;\n");
        assert!(e.contains("field a has no size"), "{e}");
        let e = parse("name: x\nformat:\n\tfield:int 9;\toffset:0;\tsize:4;\n");
        assert!(e.contains("no field name"), "{e}");
        let e = parse(
            "name: x\nformat:\n\tfield:int a;\toffset:0;\tsize:4;\n\tfield:int a;\toffset:4;\tsize:4;\n",
        );
        assert!(e.contains("duplicate field a"), "{e}");
        let e = parse("name: x\nformat:\n\tfield:int a;\toffset 0;\tsize:4;\n");
        assert!(e.contains("key:value"), "{e}");
        // Text after `print fmt:` is not parsed, whatever it holds.
        let ok = TracepointFormat::parse(
            "name: x\nformat:\n\tfield:int a;\toffset:0;\tsize:4;\n\nprint fmt: \"field:%d\"\n\tfield:junk\n",
        )
        .unwrap();
        assert_eq!(ok.fields.len(), 1);
        assert!(!ok.fields[0].signed, "signed defaults to false");
    }

    #[test]
    fn declaration_names() {
        for (decl, name) in [
            ("const void * skaddr", Some("skaddr")),
            ("const void *skaddr", Some("skaddr")),
            ("__u8 saddr[28]", Some("saddr")),
            ("__data_loc char[] name", Some("name")),
            ("unsigned char common_flags", Some("common_flags")),
            ("int", Some("int")),
            ("int x[", None),
            ("int 1x", None),
            ("", None),
        ] {
            assert_eq!(decl_name(decl), name, "{decl:?}");
        }
    }

    #[test]
    fn bad_event_names_are_refused() {
        for (category, name) in [
            ("tcp", "../../x"),
            ("..", "tcp_probe"),
            ("", "x"),
            ("tcp", ""),
        ] {
            let e =
                TracepointFormat::read_in(Path::new("/nonexistent"), category, name).unwrap_err();
            assert!(matches!(e, TracefsError::BadName(_)), "{e:?}");
        }
        let e =
            TracepointFormat::read_in(Path::new("/nonexistent"), "tcp", "tcp_probe").unwrap_err();
        assert!(e.to_string().contains("no tracepoint tcp:tcp_probe"), "{e}");
    }

    /// The live tests read tracefs, which only root may (mode 0700).
    fn require_root() {
        // SAFETY: no preconditions.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            euid, 0,
            "reading tracefs needs root; run the tests with `sudo -E cargo xtask test`"
        );
    }

    #[test]
    #[ignore = "needs root: reads tracefs; `cargo xtask test` runs it"]
    fn live_formats_give_offsets() {
        require_root();
        let root = ensure().unwrap();
        assert!(sys::is_tracefs(&root).unwrap());
        assert_eq!(find(), Some(root.clone()));
        let offsets = read_tracepoint_offsets().unwrap();
        assert_eq!(offsets.valid, 1);
        let probe = TracepointFormat::read("tcp", "tcp_probe").unwrap();
        assert_eq!(probe.name, "tcp_probe");
        assert_eq!(
            probe.field("snd_wnd").unwrap().offset,
            offsets.probe_snd_wnd
        );
        let e = TracepointFormat::read("tcp", "no_such_event").unwrap_err();
        assert!(matches!(e, TracefsError::NoTracepoint { .. }), "{e:?}");
    }

    /// The kernel's BTF describes the same records as
    /// `struct trace_event_raw_<event>` (include/trace/trace_events.h):
    /// tracefs and BTF must agree on every field blocker reads.
    #[test]
    #[ignore = "needs root: reads tracefs; `cargo xtask test` runs it"]
    fn live_formats_match_btf() {
        require_root();
        let btf = Btf::from_sys_fs().unwrap();
        for (event, fields) in [
            (
                "tcp_probe",
                &["snd_wnd", "snd_nxt", "snd_una", "skaddr"][..],
            ),
            ("tcp_retransmit_skb", &["skaddr", "state"]),
        ] {
            let format = TracepointFormat::read("tcp", event).unwrap();
            for &name in fields {
                let ours = format.field(name).unwrap();
                let btf_field = btf
                    .member(&format!("trace_event_raw_{event}"), &[name])
                    .unwrap();
                assert_eq!(
                    (ours.offset, ours.size),
                    (btf_field.offset, btf_field.size),
                    "{event}.{name}"
                );
            }
        }
    }
}

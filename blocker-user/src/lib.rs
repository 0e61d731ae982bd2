//! blocker: a kernel-side IP blocker.
//!
//! The XDP program (crate `blocker-ebpf`) drops packets from addresses in BPF
//! maps before the kernel allocates anything for them. This library owns the
//! userspace logic; the `blocker` binary parses arguments and calls it.
//!
//! Modules in the order data flows through them:
//!
//! 1. [`kernel`]: into and out of the kernel. [`kernel::object`] (the
//!    embedded eBPF object), [`kernel::pins`] (the pin directory, loading,
//!    the layout check, resizing), [`kernel::xdp`] (attach, replace, detach),
//!    [`kernel::probes`] and [`kernel::offsets`] / [`kernel::tracefs`] (the
//!    treason probes and the struct offsets they read, from BTF),
//!    [`kernel::maps`] (typed map access, [`kernel::maps::RuleTables`]),
//!    [`kernel::sys`] (system calls the other crates do not wrap).
//! 2. [`evidence`]: alert sources. [`evidence::alert`] (the `Alert` type
//!    and its bounded delivery), [`evidence::probe`] (ring-buffer events),
//!    [`evidence::kmsg`], [`evidence::eve`] (Suricata), and `follow` (tail -F
//!    and the bounded line splitter they share).
//! 3. [`incident`]: alerts grouped per source, and the `IncidentView` the
//!    council reads.
//! 4. [`council`]: agents deliberate on an incident and its facts
//!    ([`council::facts`]), offline rules ([`council::rules`]) or LLMs
//!    ([`council::llm`], [`council::prompt`], [`council::reply`]).
//! 5. [`guard`]: what a verdict may never do.
//! 6. [`verdict`]: guard, then enforcer, then journal: one path for the
//!    daemon and `blocker debate`.
//! 7. [`state`]: [`state::enforcer`] (the only writer of the maps),
//!    [`state::journal`] (SQLite), [`state::rulefile`] (import and export).
//! 8. Outputs beside the maps, fed by what was applied: [`metrics`] (the
//!    Prometheus families and the live view of kernel and journal that
//!    `blocker top` shares) and [`fleet`] (decisions shared between nodes).
//! 9. [`daemon`] (`blocker run`: start-up, scheduling, status) and
//!    [`debate`] (one debate on demand).
//!
//! Imports run one way (`cli → daemon → verdict → state → kernel`,
//! `evidence → incident → council → guard`): `tests/layout.rs` checks that
//! no two rooms import each other, directly or through others.
//!
//! Shared by several stages: [`rule`] (`List`, `Rule`), [`text`] (hostile
//! text: sanitizing, the shell-likeness check), [`addr`], [`clock`],
//! [`ttl`], [`choice`] (named values for the CLI and the
//! configuration), and [`config`] (the configuration file: it assembles the section each
//! room owns).

pub mod addr;
pub mod choice;
pub mod clock;
pub mod config;
pub mod council;
pub mod daemon;
pub mod debate;
pub mod evidence;
pub mod fleet;
pub mod guard;
pub mod incident;
pub mod kernel;
pub mod metrics;
pub mod rule;
pub mod state;
pub mod text;
pub mod ttl;
pub mod verdict;

//! A `BPF_PROG_TEST_RUN` harness: the XDP program loaded with private,
//! unpinned maps, fed crafted frames.

use std::time::Duration;

use aya::{
    Ebpf,
    programs::{TestRun, TestRunOptions, Xdp},
};
use blocker::{addr, config::MapsConfig, kernel::maps::Tables, kernel::pins, rule::List};
use blocker_common::{XdpStats, programs, reason};

pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;

pub struct Harness {
    pub ebpf: Ebpf,
    pub tables: Tables,
    program: &'static str,
}

impl Harness {
    /// The filter program with default capacities.
    pub fn new() -> Self {
        Self::with(programs::XDP, &MapsConfig::default())
    }

    /// Any XDP program of the object (`programs::XDP_BASELINE` for benches).
    pub fn with(program: &'static str, capacities: &MapsConfig) -> Self {
        crate::require_root();
        let mut ebpf = pins::load_unpinned(capacities).expect("load the eBPF object");
        let prog: &mut Xdp = ebpf
            .program_mut(program)
            .expect("program in object")
            .try_into()
            .expect("an XDP program");
        prog.load().expect("the verifier accepts the program");
        let tables = Tables::from_ebpf(&mut ebpf).expect("open tables");
        Self {
            ebpf,
            tables,
            program,
        }
    }

    /// The program under test.
    pub fn prog(&self) -> &Xdp {
        self.ebpf
            .program(self.program)
            .expect("program")
            .try_into()
            .expect("xdp")
    }

    /// Runs the program once on `frame` and returns its action.
    pub fn run(&self, frame: &[u8]) -> u32 {
        self.run_repeat(frame, 1).0
    }

    /// Runs `repeat` times; returns the action and the kernel's average time
    /// per run.
    pub fn run_repeat(&self, frame: &[u8], repeat: u32) -> (u32, Duration) {
        test_run(self.prog(), frame, repeat)
    }

    /// Runs once and returns the action and how each counter moved.
    pub fn run_counted(&self, frame: &[u8]) -> (u32, XdpStats) {
        let before = self.stats();
        let action = self.run(frame);
        (action, diff(&self.stats(), &before))
    }

    pub fn stats(&self) -> XdpStats {
        self.tables.stats().expect("read stats")
    }

    /// Adds a rule through the same code path as the CLI.
    pub fn rule(&mut self, list: List, net: &str, ttl: Option<Duration>) {
        let net = addr::parse_net(net).expect("test prefix");
        self.tables
            .upsert(list, net, ttl, reason::MANUAL)
            .expect("write rule");
    }

    pub fn ban(&mut self, net: &str) {
        self.rule(List::Block, net, None);
    }

    pub fn allow(&mut self, net: &str) {
        self.rule(List::Allow, net, None);
    }
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

/// Field-wise `after - before`.
pub fn diff(after: &XdpStats, before: &XdpStats) -> XdpStats {
    XdpStats {
        passed: after.passed - before.passed,
        dropped: after.dropped - before.dropped,
        dropped_bytes: after.dropped_bytes - before.dropped_bytes,
        passed_bytes: after.passed_bytes - before.passed_bytes,
        allowlisted_bytes: after.allowlisted_bytes - before.allowlisted_bytes,
        malformed_bytes: after.malformed_bytes - before.malformed_bytes,
        allowlisted: after.allowlisted - before.allowlisted,
        malformed: after.malformed - before.malformed,
        non_ip: after.non_ip - before.non_ip,
        expired: after.expired - before.expired,
        zw_syn: after.zw_syn - before.zw_syn,
        zw_syn_dropped: after.zw_syn_dropped - before.zw_syn_dropped,
        events: after.events - before.events,
        events_lost: after.events_lost - before.events_lost,
    }
}

/// Runs `prog` on `frame` `repeat` times; the action and the kernel's
/// average time per run.
pub fn test_run(prog: &Xdp, frame: &[u8], repeat: u32) -> (u32, Duration) {
    let opts = TestRunOptions {
        data_in: Some(frame),
        repeat,
        ..TestRunOptions::default()
    };
    let r = prog
        .test_run(opts)
        .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN on a {}-byte frame: {e}", frame.len()));
    (r.return_value, r.duration)
}

/// Pins the calling thread to `cpu`, so `BPF_PROG_TEST_RUN` runs there.
pub fn pin_to_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET stays in range.
    let ok = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set)
    };
    assert_eq!(
        ok,
        0,
        "pin to CPU {cpu}: {}",
        std::io::Error::last_os_error()
    );
}

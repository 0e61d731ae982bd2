//! The container image as a sidecar, for real: an "application" network
//! namespace (standing for a pod) with a TCP service on its veth; the
//! blocker container joins that namespace (`podman run --network
//! ns:/run/netns/NAME`, which is how a pod's containers share one) with only
//! the capabilities it needs, and protects the service. A banned peer is
//! dropped, a friend passes, `podman restart` keeps the ban (the pins live in
//! the host's bpffs, mounted into the container), and `podman exec ...
//! blocker list` shows it.
//!
//! The image is built by `cargo xtask image` (`cargo xtask test` builds it
//! before the integration tests and passes its name in `$BLOCKER_IMAGE`).
//! Containers run with `--runtime runc` and explicit ulimits: crun refuses
//! this machine's hybrid cgroup layout and podman's default limits exceed
//! the hard limits here (DESIGN.md).

use std::{
    net::SocketAddr,
    process::{Command, Output},
    time::Duration,
};

use blocker_tests::{
    State, describe,
    lab::{CLIENT_V4, Lab, SERVER_V4},
    require_root, unique, wait_until,
};

/// The minimal capability set of `blocker run` (see README "Capabilities"),
/// established by dropping each of them in `each_capability_is_needed`.
const RUN_CAPS: &[&str] = &["BPF", "NET_ADMIN", "PERFMON"];

fn image() -> String {
    std::env::var("BLOCKER_IMAGE").unwrap_or_else(|_| {
        panic!(
            "$BLOCKER_IMAGE is not set: build the image with `cargo xtask image` and run \
             BLOCKER_IMAGE=localhost/blocker:latest cargo test -p blocker-tests --test container \
             (cargo xtask test does both)"
        )
    })
}

fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(["--runtime", "runc"])
        .args(args)
        .output()
        .expect("spawn podman (apt-get install podman runc, or cargo xtask bootstrap)")
}

fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(out.status.success(), "podman {args:?}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A container, removed (with its anonymous volumes) on drop.
struct Container {
    name: String,
}

impl Container {
    /// `podman run -d` of the image as a sidecar in `netns`, with the host's
    /// bpffs and `state`'s directories; `security` are the privilege flags.
    fn sidecar(state: &State, netns: &str, iface: &str, security: &[&str]) -> Self {
        let name = unique("blocker-sidecar-");
        let c = Self { name };
        let network = format!("ns:/run/netns/{netns}");
        let pins = format!("BLOCKER_PIN_DIR={}", state.pin_dir.display());
        let volume = format!("{}:/var/lib/blocker", state.state_dir.display());
        let mut args = vec![
            "run",
            "-d",
            "--name",
            &c.name,
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            "--network",
            &network,
            "-v",
            "/sys/fs/bpf:/sys/fs/bpf",
            // The treason probes' tracepoints are found through tracefs.
            "-v",
            "/sys/kernel/tracing:/sys/kernel/tracing:ro",
            "-v",
            &volume,
            "-e",
            &pins,
        ];
        args.extend_from_slice(security);
        let image = image();
        args.extend_from_slice(&[&image, "--iface", iface, "--no-kmsg"]);
        podman_ok(&args);
        c
    }

    fn logs(&self) -> String {
        let out = podman(&["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    fn running(&self) -> bool {
        podman(&["inspect", "-f", "{{.State.Running}}", &self.name])
            .stdout
            .starts_with(b"true")
    }

    /// Waits until the daemon in the container has said "blocker running"
    /// `times` times (once per start).
    fn wait_started(&self, times: usize) {
        let ok = wait_until(Duration::from_secs(60), || {
            self.logs().matches("blocker running").count() >= times
        });
        assert!(
            ok,
            "blocker in {} not running after 60 s (running: {}):\n{}",
            self.name,
            self.running(),
            self.logs()
        );
    }

    /// `podman exec NAME blocker args...`
    fn blocker(&self, args: &[&str]) -> String {
        let mut a = vec!["exec", &self.name, "blocker"];
        a.extend_from_slice(args);
        podman_ok(&a)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-v", "-t", "0", &self.name]);
    }
}

fn listed(c: &Container) -> Vec<String> {
    let text = c.blocker(&["list", "--json"]);
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["address"].as_str().unwrap().to_string())
        .collect()
}

/// `--cap-drop all`, the given capabilities, and no seccomp filter: podman's
/// default profile makes `bpf()` fail with EPERM part way through loading
/// (creating the ZW_SYN_V6 map) even with CAP_BPF, while CAP_SYS_ADMIN or
/// `seccomp=unconfined` lets it through; the latter grants no capability.
fn security(caps: &[&str]) -> Vec<String> {
    let mut a = vec![
        "--security-opt".to_string(),
        "seccomp=unconfined".to_string(),
        "--cap-drop".to_string(),
        "all".to_string(),
    ];
    for cap in caps {
        a.push("--cap-add".into());
        a.push((*cap).into());
    }
    a
}

fn cap_args() -> Vec<String> {
    security(RUN_CAPS)
}

#[test]
fn sidecar_protects_the_pods_service_and_keeps_bans_across_restart() {
    require_root();
    let state = State::new();
    let lab = Lab::new();
    let port = 8080;
    let _service = lab.tcp_server(port);
    let service: SocketAddr = format!("{SERVER_V4}:{port}").parse().unwrap();
    let (attacker, friend) = (CLIENT_V4[0], CLIENT_V4[1]);
    let t = Duration::from_secs(2);
    assert!(
        lab.tcp_connect(attacker, service, t),
        "service unreachable before blocker"
    );

    let caps = cap_args();
    let caps: Vec<&str> = caps.iter().map(String::as_str).collect();
    let c = Container::sidecar(&state, &lab.server.name, &lab.server_if, &caps);
    c.wait_started(1);
    // The minimal set is enough for the probes too (tracepoints here).
    assert!(c.logs().contains("treason probes attached"), "{}", c.logs());

    c.blocker(&["ban", attacker, "--reason", "sidecar test"]);
    assert!(
        !lab.tcp_connect(attacker, service, t),
        "banned peer reached the service"
    );
    assert!(lab.tcp_connect(friend, service, t), "friend was dropped");
    assert_eq!(listed(&c), vec![attacker.to_string()]);

    podman_ok(&["restart", "-t", "10", &c.name]);
    c.wait_started(2);
    assert_eq!(
        listed(&c),
        vec![attacker.to_string()],
        "the ban did not survive the restart"
    );
    assert!(
        !lab.tcp_connect(attacker, service, t),
        "banned peer reached the service after the restart"
    );
    assert!(
        lab.tcp_connect(friend, service, t),
        "friend dropped after the restart"
    );
    let list = c.blocker(&["list"]);
    assert!(
        list.contains(attacker) && list.contains("sidecar test"),
        "{list}"
    );
    // The drops were counted in the kernel, on the rule.
    let stats = state.json(&["list"]);
    assert!(
        stats["rules"][0]["packets"].as_u64().unwrap_or(0) > 0,
        "{stats}"
    );
}

/// The minimal set is minimal: without any one of its capabilities `blocker
/// run` fails in the container, saying which is missing; `--privileged`
/// works too.
#[test]
fn each_capability_is_needed_and_privileged_works() {
    require_root();
    let lab = Lab::new();
    for missing in RUN_CAPS {
        let state = State::new();
        let keep: Vec<&str> = RUN_CAPS.iter().copied().filter(|c| c != missing).collect();
        let a = security(&keep);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let c = Container::sidecar(&state, &lab.server.name, &lab.server_if, &a);
        let exited = wait_until(Duration::from_secs(60), || !c.running());
        assert!(exited, "blocker ran without CAP_{missing}:\n{}", c.logs());
        let logs = c.logs();
        assert!(
            logs.contains(&format!("CAP_{missing}")),
            "the error does not name CAP_{missing}:\n{logs}"
        );
    }
    let state = State::new();
    let c = Container::sidecar(&state, &lab.server.name, &lab.server_if, &["--privileged"]);
    c.wait_started(1);
    c.blocker(&["ban", CLIENT_V4[0]]);
    assert!(!lab.ping(CLIENT_V4[0], SERVER_V4), "banned peer answered");
    assert!(lab.ping(CLIENT_V4[1], SERVER_V4), "friend dropped");
}

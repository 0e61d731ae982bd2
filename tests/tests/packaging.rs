//! The packaging files are checked by the tools that consume them: the
//! systemd unit by `systemd-analyze verify` (and its `security` exposure
//! score), the Kubernetes manifests by PyPI's `kubernetes-validate` against
//! the bundled Kubernetes schemas, and the Dockerfile is the Containerfile.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use blocker_tests::{blocker_bin, describe, unique};

fn packaging() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging")
}

/// A temp dir removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let d = std::env::temp_dir().join(unique("blocker-pkg-"));
        std::fs::create_dir_all(&d).expect("temp dir");
        Self(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn dockerfile_is_the_containerfile() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let c = std::fs::read(root.join("Containerfile")).expect("Containerfile");
    let d = std::fs::read(root.join("Dockerfile")).expect("Dockerfile");
    assert_eq!(c, d, "Dockerfile and Containerfile differ");
    let c = std::fs::read(root.join(".containerignore")).expect(".containerignore");
    let d = std::fs::read(root.join(".dockerignore")).expect(".dockerignore");
    assert_eq!(c, d, ".dockerignore and .containerignore differ");
}

/// The shipped unit with ExecStart pointing at the binary under test (verify
/// checks that the command exists and is executable).
fn unit_under_test(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(packaging().join("systemd/blocker.service"))
        .expect("packaging/systemd/blocker.service");
    assert!(
        text.contains("ExecStart=/usr/bin/blocker run --iface ${BLOCKER_IFACE}"),
        "{text}"
    );
    let unit = dir.join("blocker.service");
    std::fs::write(
        &unit,
        text.replace("/usr/bin/blocker", &blocker_bin().display().to_string()),
    )
    .expect("write unit");
    unit
}

fn systemd_analyze(args: &[&str], unit: &Path) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(args)
        .arg(unit)
        .output()
        .expect("spawn systemd-analyze (apt-get install systemd)")
}

#[test]
fn systemd_unit_verifies() {
    let dir = TempDir::new();
    let unit = unit_under_test(&dir.0);
    let out = systemd_analyze(&["verify"], &unit);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "{}",
        describe(&out)
    );
    // The verifier can fail: a misspelt directive is reported.
    let bad = dir.0.join("bad.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    std::fs::write(&bad, text.replace("ProtectHome=", "ProtectHomes=")).unwrap();
    let out = systemd_analyze(&["verify"], &bad);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ProtectHomes"),
        "{}",
        describe(&out)
    );
}

#[test]
fn systemd_unit_exposure_is_low() {
    let dir = TempDir::new();
    let unit = unit_under_test(&dir.0);
    let out = systemd_analyze(&["security", "--offline=yes", "--no-pager"], &unit);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no score: {}", describe(&out)));
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unparsable score line: {line}"));
    eprintln!("systemd-analyze security: {line}");
    // 0 is locked down, 10 is unprotected; what blocker must keep (BPF,
    // XDP attach, kernel memory reads, /dev/kmsg) costs some of it.
    assert!(score <= 3.5, "exposure rose to {score}: {text}");
    // The capability bounding set is what blocker needs, no more.
    for denied in ["CAP_SYS_ADMIN", "CAP_SYS_MODULE", "CAP_SYS_PTRACE"] {
        let row = text
            .lines()
            .find(|l| l.contains("CapabilityBoundingSet=~") && l.contains(denied))
            .unwrap_or_else(|| panic!("no row for {denied}: {text}"));
        assert!(row.trim_start().starts_with('✓'), "{row}");
    }
}

fn kubernetes_validate() -> PathBuf {
    let p = std::env::var_os("KUBERNETES_VALIDATE").map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target/tools/k8s-venv/bin/kubernetes-validate")
        },
        PathBuf::from,
    );
    assert!(
        p.exists(),
        "kubernetes-validate not found at {}: `cargo xtask test` installs it into a venv (or set $KUBERNETES_VALIDATE)",
        p.display()
    );
    p
}

#[test]
fn kubernetes_manifests_validate() {
    let bin = kubernetes_validate();
    let dir = packaging().join("kubernetes");
    let mut manifests: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("packaging/kubernetes")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    manifests.sort();
    assert!(manifests.len() >= 2, "{manifests:?}");
    let out = Command::new(&bin)
        .arg("--strict")
        .args(&manifests)
        .output()
        .expect("spawn kubernetes-validate");
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for kind in ["daemonset/blocker", "pod/web", "configmap/blocker-config"] {
        assert!(
            text.contains(&format!("passed for resource {kind}")),
            "{text}"
        );
    }
    // The DaemonSet has what the issue asks for.
    let ds = std::fs::read_to_string(dir.join("daemonset.yaml")).unwrap();
    for needle in [
        "hostNetwork: true",
        "path: /sys/fs/bpf",
        "path: /var/lib/blocker",
        "livenessProbe:",
        "readinessProbe:",
        "resources:",
    ] {
        assert!(ds.contains(needle), "daemonset.yaml lacks {needle}");
    }
    // The validator can fail: a wrong type is rejected.
    let tmp = TempDir::new();
    let bad = tmp.0.join("bad.yaml");
    std::fs::write(
        &bad,
        ds.replace("hostNetwork: true", "hostNetwork: yes-please"),
    )
    .unwrap();
    let out = Command::new(&bin)
        .arg("--strict")
        .arg(&bad)
        .output()
        .expect("spawn kubernetes-validate");
    assert!(
        !out.status.success(),
        "a bad manifest passed: {}",
        describe(&out)
    );
}

#[test]
fn fail2ban_action_calls_blocker_ban_and_unban() {
    let text = std::fs::read_to_string(packaging().join("fail2ban/action.d/blocker.conf"))
        .expect("packaging/fail2ban/action.d/blocker.conf");
    assert!(
        text.contains("ban '<ip>' --ttl '<bantime>s' --reason 'fail2ban <name>'"),
        "{text}"
    );
    assert!(
        text.contains("actionunban = <blocker> <blocker_opts> unban '<ip>'"),
        "{text}"
    );
}

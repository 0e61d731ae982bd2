//! SIGHUP: the configuration file is read again and what can change
//! without reloading the programs is applied: the guard's settings
//! (`[guard]`, its trusted list and the configured allowlist, which reaches
//! the kernel allowlist through the enforcer) and the council's
//! (`[council]`). Everything else (interfaces, pins, XDP mode, map sizes,
//! sources, ...) is reported as needing a restart and left as it runs.
//! An invalid file changes nothing: the reason is logged and the running
//! configuration kept.

use std::{collections::BTreeMap, collections::HashSet, path::PathBuf, sync::Arc};

use ipnet::IpNet;
use tracing::{info, warn};

use super::pipeline::Pipeline;
use crate::{addr, config::Config, kernel::maps::RuleTables, rule::List, state::enforcer::Change};

/// The journal's source for allow rules that come from `[guard] allowlist`.
pub const CONFIG_SOURCE: &str = "config";

/// Sections a SIGHUP applies; the others need a restart.
const LIVE_SECTIONS: [&str; 2] = ["guard", "council"];

/// Merges the command-line flags over a freshly loaded file.
pub type Overrides = Arc<dyn Fn(&mut Config) -> Result<(), String> + Send + Sync>;

/// Where the configuration comes from, to read it again on SIGHUP: the
/// file, and the command-line flags merged over it at start (so a reload
/// does not undo them).
#[derive(Clone)]
pub struct Reload {
    pub path: PathBuf,
    /// A missing file is an error (it was named with `--config`), rather
    /// than the defaults.
    pub required: bool,
    pub overrides: Overrides,
}

impl std::fmt::Debug for Reload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reload")
            .field("path", &self.path)
            .field("required", &self.required)
            .finish_non_exhaustive()
    }
}

impl Reload {
    /// The file with the flags merged in, validated.
    pub fn load(&self) -> Result<Config, String> {
        // The error becomes a log line ("SIGHUP: ...; rejected"); its text
        // carries the cause (ConfigError's message includes its source).
        let mut cfg = Config::load(&self.path, self.required).map_err(|e| e.to_string())?;
        (self.overrides)(&mut cfg)?;
        cfg.validate()
            .map_err(|e| format!("invalid config {}: {e}", self.path.display()))?;
        Ok(cfg)
    }
}

/// One setting that differs between two configurations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changed {
    /// `[section] key` (`[council.llm] model`).
    pub setting: String,
    pub old: String,
    pub new: String,
    /// Applied by a reload (else it needs a restart).
    pub live: bool,
}

impl std::fmt::Display for Changed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} → {}", self.setting, self.old, self.new)
    }
}

/// Every setting of `new` that differs from `old`, one per leaf (lists
/// count as one setting), in file order of sections.
pub fn diff(old: &Config, new: &Config) -> Vec<Changed> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten(
        &[],
        &serde_json::to_value(old).expect("config serializes"),
        &mut a,
    );
    flatten(
        &[],
        &serde_json::to_value(new).expect("config serializes"),
        &mut b,
    );
    let keys: std::collections::BTreeSet<&Vec<String>> = a.keys().chain(b.keys()).collect();
    let none = serde_json::Value::Null;
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            let (section, key) = match k.split_last() {
                Some((key, [])) => (String::new(), key.clone()),
                Some((key, path)) => (path.join("."), key.clone()),
                None => (String::new(), String::new()),
            };
            let secret = is_secret(&key);
            let show = |v: Option<&serde_json::Value>| {
                if secret {
                    "(hidden)".to_string()
                } else {
                    shorten(&v.unwrap_or(&none).to_string())
                }
            };
            Changed {
                setting: if section.is_empty() {
                    key.clone()
                } else {
                    format!("[{section}] {key}")
                },
                old: show(a.get(k)),
                new: show(b.get(k)),
                live: k
                    .first()
                    .is_some_and(|s| LIVE_SECTIONS.contains(&s.as_str())),
            }
        })
        .collect()
}

fn flatten(
    path: &[String],
    v: &serde_json::Value,
    out: &mut BTreeMap<Vec<String>, serde_json::Value>,
) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let mut p = path.to_vec();
                p.push(k.clone());
                flatten(&p, v, out);
            }
        }
        _ => {
            out.insert(path.to_vec(), v.clone());
        }
    }
}

/// Credentials are never logged, not even changed ones.
fn is_secret(key: &str) -> bool {
    matches!(key, "password" | "token" | "api_key" | "key") || key.ends_with("_key")
}

/// Long values (system prompts) cut for one log line.
fn shorten(s: &str) -> String {
    const MAX: usize = 120;
    if s.chars().count() <= MAX {
        return s.to_string();
    }
    let cut: String = s.chars().take(MAX).collect();
    format!("{cut}…")
}

impl<T: RuleTables> Pipeline<T> {
    /// SIGHUP: read the file again and apply what can change live.
    pub(super) fn on_reload(&mut self) {
        let Some(reload) = self.reload.clone() else {
            warn!("SIGHUP: no configuration file to reload; nothing changed");
            return;
        };
        match reload.load() {
            Ok(new) => self.apply_config(new, &reload.path.display().to_string()),
            Err(e) => warn!("SIGHUP: {e}; rejected, the running configuration is kept"),
        }
    }

    /// Applies the live sections of `new` (all or nothing) and logs one
    /// line per changed setting.
    pub(super) fn apply_config(&mut self, new: Config, from: &str) {
        let changes = diff(&self.cfg, &new);
        if changes.is_empty() {
            info!("SIGHUP: nothing changed in {from}");
            return;
        }
        let mut next = self.cfg.clone();
        next.guard = new.guard;
        next.council = new.council;
        // Build everything before committing anything: a council that
        // cannot be built (an LLM endpoint without a key) keeps the old
        // configuration whole.
        let council = if next.council != self.cfg.council {
            match crate::council::build_after(&next.council, Some(&self.council)) {
                Ok(c) => Some(Arc::new(c.with_cancel(self.cancel.clone()))),
                Err(e) => {
                    warn!("SIGHUP: {from}: {e}; rejected, the running configuration is kept");
                    return;
                }
            }
        } else {
            None
        };
        if let Err(e) = self.guard.reconfigure(next.guard.clone()) {
            warn!(
                "SIGHUP: {from}: [guard] trusted: {e}; rejected, the running configuration is kept"
            );
            return;
        }
        for c in &changes {
            if c.live {
                info!("SIGHUP: {c}");
            } else {
                warn!("SIGHUP: {c}: needs a restart; ignored until then");
            }
        }
        if let Some(council) = council {
            // Debates in flight finish with the council they started with.
            self.council = council;
            self.council_status.agents = self.council.agent_names();
            info!("SIGHUP: council now {}", self.council.describe().join(", "));
        }
        let allowlist_changed = next.guard.allowlist != self.cfg.guard.allowlist;
        self.cfg = next;
        if allowlist_changed {
            self.sync_config_allowlist();
        }
    }

    /// Makes the kernel allowlist's `config` rules match `[guard]
    /// allowlist`: adds the missing ones, removes those no longer listed.
    /// Rules from `blocker allow` are left alone, even for a listed prefix.
    pub(super) fn sync_config_allowlist(&mut self) {
        let want: HashSet<IpNet> = match self.cfg.guard.allowlist_nets() {
            Ok(v) => v.into_iter().collect(),
            Err(e) => {
                warn!("[guard] allowlist: {e}; the kernel allowlist is unchanged");
                return;
            }
        };
        let Some(store) = self.enforcer.store() else {
            if !want.is_empty() {
                warn!(
                    "[guard] allowlist not applied: the journal is unavailable (blocker never enforces a rule it cannot record)"
                );
            }
            return;
        };
        let active = match store.active_rules() {
            Ok(r) => r,
            Err(e) => {
                warn!("[guard] allowlist not applied: {e}");
                return;
            }
        };
        let ours: HashSet<IpNet> = active
            .iter()
            .filter(|r| r.list == List::Allow && r.source == CONFIG_SOURCE)
            .map(|r| r.net)
            .collect();
        let others: HashSet<IpNet> = active
            .iter()
            .filter(|r| r.list == List::Allow && r.source != CONFIG_SOURCE)
            .map(|r| r.net)
            .collect();
        let mut add: Vec<&IpNet> = want
            .iter()
            .filter(|n| !ours.contains(n) && !others.contains(n))
            .collect();
        add.sort();
        let mut remove: Vec<&IpNet> = ours.iter().filter(|n| !want.contains(n)).collect();
        remove.sort();
        for net in add {
            match self.enforcer.add(&Change {
                list: List::Allow,
                net: *net,
                ttl: None,
                reason: "[guard] allowlist in the configuration",
                reason_code: blocker_common::reason::MANUAL,
                source: CONFIG_SOURCE,
            }) {
                Ok(_) => info!(
                    "allowlist: added {} ([guard] allowlist)",
                    addr::display(net)
                ),
                Err(e) => warn!("allowlist: could not add {}: {e}", addr::display(net)),
            }
        }
        for net in remove {
            match self
                .enforcer
                .remove(List::Allow, *net, "removed from [guard] allowlist")
            {
                Ok(_) => info!(
                    "allowlist: removed {} (no longer in [guard] allowlist)",
                    addr::display(net)
                ),
                Err(e) => warn!("allowlist: could not remove {}: {e}", addr::display(net)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_names_each_setting_and_what_needs_a_restart() {
        let old = Config::default();
        assert_eq!(diff(&old, &old), Vec::new());
        let mut new = old.clone();
        new.guard.allowlist = vec!["198.18.0.5".into()];
        new.guard.max_ttl = std::time::Duration::from_secs(7 * 86_400);
        new.council.max_concurrent = 2;
        new.xdp.zero_window_threshold = 5;
        new.fleet.password = "hunter2".into();
        let d = diff(&old, &new);
        let lines: Vec<String> = d.iter().map(|c| format!("{c} live={}", c.live)).collect();
        assert_eq!(
            lines,
            [
                "[council] max_concurrent: 4 → 2 live=true",
                "[fleet] password: (hidden) → (hidden) live=false",
                "[guard] allowlist: [] → [\"198.18.0.5\"] live=true",
                "[guard] max_ttl: \"30days\" → \"7days\" live=true",
                "[xdp] zero_window_threshold: 20 → 5 live=false",
            ],
            "{lines:#?}"
        );
    }
}

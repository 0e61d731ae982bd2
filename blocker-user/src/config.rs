//! The TOML configuration (`--config`). The documented default file,
//! `blocker.toml`, is embedded so defaults and documentation cannot drift; a
//! unit test checks it parses to [`Config::default`].

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

/// The documented default configuration file.
pub const DEFAULT_TOML: &str = include_str!("../blocker.toml");

/// Where `blocker` looks when `--config` is not given (a missing file there
/// is fine: defaults apply).
pub const DEFAULT_PATH: &str = "/etc/blocker/blocker.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub pin_dir: PathBuf,
    pub state_dir: PathBuf,
    pub xdp: XdpConfig,
    pub maps: MapsConfig,
    pub daemon: DaemonConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            pin_dir: PathBuf::from(blocker_common::DEFAULT_PIN_DIR),
            state_dir: PathBuf::from("/var/lib/blocker"),
            xdp: XdpConfig::default(),
            maps: MapsConfig::default(),
            daemon: DaemonConfig::default(),
        }
    }
}

/// How the XDP program is attached.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[derive(clap::ValueEnum)]
pub enum XdpMode {
    /// Native (driver) mode, falling back to generic (skb) mode.
    #[default]
    Auto,
    /// Native mode only: fastest, needs driver support.
    Driver,
    /// Generic mode: works on every interface, after the kernel allocated the skb.
    Skb,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct XdpConfig {
    pub mode: XdpMode,
}

/// Capacities of the kernel tables, in entries.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct MapsConfig {
    pub block_v4: u32,
    pub block_v6: u32,
    pub block_net_v4: u32,
    pub block_net_v6: u32,
    pub allow_v4: u32,
    pub allow_v6: u32,
    pub zero_window_v4: u32,
    pub zero_window_v6: u32,
}

impl Default for MapsConfig {
    fn default() -> Self {
        Self {
            block_v4: 65536,
            block_v6: 65536,
            block_net_v4: 16384,
            block_net_v6: 16384,
            allow_v4: 4096,
            allow_v6: 4096,
            zero_window_v4: 65536,
            zero_window_v6: 65536,
        }
    }
}

impl MapsConfig {
    /// `(map name, capacity, config key)` for every sized map.
    pub fn entries(&self) -> [(&'static str, u32, &'static str); 8] {
        use blocker_common::maps::*;
        [
            (BLOCK_V4, self.block_v4, "block_v4"),
            (BLOCK_V6, self.block_v6, "block_v6"),
            (BLOCK_NET_V4, self.block_net_v4, "block_net_v4"),
            (BLOCK_NET_V6, self.block_net_v6, "block_net_v6"),
            (ALLOW_V4, self.allow_v4, "allow_v4"),
            (ALLOW_V6, self.allow_v6, "allow_v6"),
            (ZW_SYN_V4, self.zero_window_v4, "zero_window_v4"),
            (ZW_SYN_V6, self.zero_window_v6, "zero_window_v6"),
        ]
    }

    /// The config key that sets the capacity of map `name`.
    pub fn key_for(&self, name: &str) -> Option<&'static str> {
        self.entries()
            .into_iter()
            .find(|e| e.0 == name)
            .map(|e| e.2)
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonConfig {
    #[serde(with = "duration")]
    pub gc_interval: Duration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            gc_interval: Duration::from_secs(30),
        }
    }
}

impl Config {
    /// Loads `path`; with `required == false` a missing file means defaults.
    pub fn load(path: &Path, required: bool) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Self::default());
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        for (name, n, key) in self.maps.entries() {
            if n == 0 {
                return Err(format!(
                    "[maps] {key} = 0: map {name} needs at least one entry"
                ));
            }
        }
        if self.daemon.gc_interval < Duration::from_secs(1) {
            return Err("[daemon] gc_interval must be at least 1s".into());
        }
        Ok(())
    }
}

/// Serde for durations written as `30s`, `5m`, `1h`.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map_err(|e| serde::de::Error::custom(format!("{s:?}: {e} (examples: 30s, 5m, 1h)")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_file_matches_defaults() {
        assert_eq!(Config::parse(DEFAULT_TOML).unwrap(), Config::default());
    }

    #[test]
    fn empty_file_is_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn overrides_and_errors() {
        let c = Config::parse("[maps]\nblock_v4 = 10\n[xdp]\nmode = \"skb\"\n").unwrap();
        assert_eq!(c.maps.block_v4, 10);
        assert_eq!(c.xdp.mode, XdpMode::Skb);
        assert!(
            Config::parse("[maps]\nblock_v4 = 0\n")
                .unwrap_err()
                .contains("block_v4")
        );
        assert!(
            Config::parse("[maps]\nblok_v4 = 1\n")
                .unwrap_err()
                .contains("unknown field")
        );
        assert!(Config::parse("[daemon]\ngc_interval = \"soon\"\n").is_err());
        assert!(Config::parse("[xdp]\nmode = \"turbo\"\n").is_err());
    }

    #[test]
    fn missing_optional_file_is_defaults() {
        let c = Config::load(Path::new("/nonexistent/blocker.toml"), false).unwrap();
        assert_eq!(c, Config::default());
        assert!(Config::load(Path::new("/nonexistent/blocker.toml"), true).is_err());
    }
}

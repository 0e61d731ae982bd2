//! CrowdSec as a source of decisions (a bouncer, `[sources.crowdsec]`)
//! and as a sink of blocker's kernel evidence (a watcher pushing alerts,
//! `[sources.crowdsec.push]`).
//!
//! - [`lapi`]: the Local API over HTTP (decision stream, login, alerts).
//! - [`decision`]: decisions → the bans blocker should hold: filters,
//!   origins, several decisions for one prefix, deletions.
//!
//! The daemon (`daemon::crowdsec`) polls, checks each ban with the guard
//! (`Guard::check_external`) and applies them through the enforcer.

pub mod decision;
pub mod lapi;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Where the bouncer's API key comes from when `api_key_file` is empty.
pub const API_KEY_ENV: &str = "BLOCKER_CROWDSEC_API_KEY";
/// Where the watcher's password comes from when `password_file` is empty.
pub const PASSWORD_ENV: &str = "BLOCKER_CROWDSEC_PASSWORD";

#[derive(Debug, thiserror::Error)]
pub enum CrowdsecError {
    #[error("[sources.crowdsec] lapi_url {url:?}: {why}")]
    BadUrl { url: String, why: String },
    #[error(
        "[sources.crowdsec] lapi_url must not carry credentials: put the bouncer key in api_key_file or ${API_KEY_ENV}"
    )]
    CredentialsInUrl,
    #[error("cannot read {what} from {path}: {source}")]
    Secret {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no {what}: set {key} under [sources.crowdsec] or ${env}")]
    NoSecret {
        what: &'static str,
        key: &'static str,
        env: &'static str,
    },
    #[error("the API key or token holds characters an HTTP header cannot carry")]
    BadKey,
    #[error("HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("Local API unreachable: {0}")]
    Http(#[source] reqwest::Error),
    #[error("Local API answered {status}{}{}", if hint.is_empty() { String::new() } else { format!(" ({hint})") }, if body.is_empty() { String::new() } else { format!(": {body}") })]
    Status {
        status: u16,
        hint: &'static str,
        body: String,
    },
    #[error("Local API sent malformed JSON: {0}")]
    Json(#[source] serde_json::Error),
}

/// How decisions are pulled. Only the stream exists: the full list once
/// (`startup=true`), then what changed; a live query per packet has no
/// place in XDP.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Stream,
}

/// `[sources.crowdsec]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CrowdsecConfig {
    pub enabled: bool,
    pub lapi_url: String,
    pub api_key_file: String,
    #[serde(with = "crate::ttl::duration")]
    pub poll_interval: Duration,
    pub mode: Mode,
    pub scopes: Vec<String>,
    pub origins: Vec<String>,
    pub scenarios_containing: Vec<String>,
    pub scenarios_not_containing: Vec<String>,
    #[serde(with = "crate::ttl::duration")]
    pub timeout: Duration,
    #[serde(with = "crate::ttl::duration")]
    pub max_backoff: Duration,
    #[serde(with = "crate::ttl::duration")]
    pub resync_interval: Duration,
    pub batch: usize,
    pub push: PushConfig,
}

impl Default for CrowdsecConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            lapi_url: "http://127.0.0.1:8080".into(),
            api_key_file: String::new(),
            poll_interval: Duration::from_secs(10),
            mode: Mode::Stream,
            scopes: vec!["ip".into(), "range".into()],
            origins: Vec::new(),
            scenarios_containing: Vec::new(),
            scenarios_not_containing: Vec::new(),
            timeout: Duration::from_secs(10),
            max_backoff: Duration::from_secs(60),
            resync_interval: Duration::from_secs(600),
            batch: 2000,
            push: PushConfig::default(),
        }
    }
}

/// `[sources.crowdsec.push]`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    pub enabled: bool,
    pub machine_id: String,
    pub password_file: String,
}

impl CrowdsecConfig {
    /// What the config loader checks.
    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        lapi::Client::new(&self.lapi_url, self.timeout).map_err(|e| e.to_string())?;
        if self.poll_interval < Duration::from_millis(100) {
            return Err("[sources.crowdsec] poll_interval must be at least 100ms".into());
        }
        if self.batch == 0 {
            return Err("[sources.crowdsec] batch must be at least 1".into());
        }
        if let Some(s) = self
            .scopes
            .iter()
            .find(|s| !matches!(s.to_ascii_lowercase().as_str(), "ip" | "range"))
        {
            return Err(format!(
                "[sources.crowdsec] scopes: {s:?} is not enforceable in XDP (known: \"ip\", \"range\")"
            ));
        }
        if self.push.enabled && self.push.machine_id.is_empty() {
            return Err(
                "[sources.crowdsec.push] machine_id is empty: register one with `cscli machines add NAME -p PASSWORD`"
                    .into(),
            );
        }
        Ok(())
    }

    /// The bouncer key: `api_key_file`'s first line, else `$BLOCKER_CROWDSEC_API_KEY`.
    pub fn api_key(&self) -> Result<SecretString, CrowdsecError> {
        secret(
            "the bouncer API key",
            &self.api_key_file,
            "api_key_file",
            API_KEY_ENV,
        )
    }

    /// The watcher's password: `password_file`, else `$BLOCKER_CROWDSEC_PASSWORD`.
    pub fn push_password(&self) -> Result<SecretString, CrowdsecError> {
        secret(
            "the machine password",
            &self.push.password_file,
            "push.password_file",
            PASSWORD_ENV,
        )
    }
}

fn secret(
    what: &'static str,
    file: &str,
    key: &'static str,
    env: &'static str,
) -> Result<SecretString, CrowdsecError> {
    let value = if file.is_empty() {
        std::env::var(env).unwrap_or_default()
    } else {
        let path = Path::new(file);
        std::fs::read_to_string(path)
            .map_err(|source| CrowdsecError::Secret {
                what,
                path: path.to_owned(),
                source,
            })?
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let value = value.trim();
    if value.is_empty() {
        return Err(CrowdsecError::NoSecret { what, key, env });
    }
    Ok(SecretString::from(value.to_string()))
}

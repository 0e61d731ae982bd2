//! The CrowdSec Local API over HTTP: the bouncer's decision stream
//! (`GET /v1/decisions/stream`, key in `X-Api-Key`) and the watcher's
//! login and alerts (`POST /v1/watchers/login`, `POST /v1/alerts` with the
//! JWT it returns). Types follow the API's swagger (v1), only the fields
//! blocker reads or must send.

use std::time::Duration;

use reqwest::{StatusCode, Url, header::HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::CrowdsecError;

/// One decision as the stream returns it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Decision {
    pub id: i64,
    /// `CAPI`, `crowdsec`, `cscli`, `cscli-import`, `lists`, ...
    #[serde(default)]
    pub origin: String,
    /// `ban`, `captcha`, ...
    #[serde(rename = "type", default)]
    pub kind: String,
    /// `Ip`, `Range`, ... (case varies between versions).
    #[serde(default)]
    pub scope: String,
    #[serde(default)]
    pub value: String,
    /// Time left, as a Go duration (`3h59m58.8s`; negative once deleted).
    #[serde(default)]
    pub duration: String,
    /// The scenario; for `lists` decisions the list's name.
    #[serde(default)]
    pub scenario: String,
}

/// One answer of the stream: what appeared and what went since the last
/// pull (everything live, with `startup=true`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Stream {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub new: Vec<Decision>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub deleted: Vec<Decision>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Decision>, D::Error> {
    Ok(Option::<Vec<Decision>>::deserialize(d)?.unwrap_or_default())
}

/// What the stream is asked for (the API filters too; blocker filters
/// again, see `decision::Filters`).
#[derive(Clone, Debug, Default)]
pub struct Query<'a> {
    pub scopes: &'a [String],
    pub origins: &'a [String],
    pub scenarios_containing: &'a [String],
    pub scenarios_not_containing: &'a [String],
}

/// A Go `time.Duration` string (`1h2m3.5s`, `-11.6ms`, `300µs`, `0s`) in
/// whole and fractional units. Negative durations come back as `None`:
/// nothing is left.
pub fn parse_go_duration(text: &str) -> Option<Option<Duration>> {
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Some(Some(Duration::ZERO));
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let value: f64 = num.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let secs = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * secs;
        rest = tail;
    }
    if negative && total > 0.0 {
        return Some(None);
    }
    Duration::try_from_secs_f64(total).ok().map(Some)
}

/// A Local API client: the base URL and one HTTP client.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .finish()
    }
}

impl Client {
    /// A client of the API at `url` (`http://127.0.0.1:8080`), each call
    /// bounded by `timeout`. A URL with credentials in it is refused: keys
    /// go in headers, never in URLs that end up in logs.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, CrowdsecError> {
        let base = Url::parse(url).map_err(|e| CrowdsecError::BadUrl {
            url: url.to_string(),
            why: e.to_string(),
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(CrowdsecError::BadUrl {
                url: url.to_string(),
                why: "expected http://HOST:PORT or https://HOST:PORT".into(),
            });
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(CrowdsecError::CredentialsInUrl);
        }
        // reqwest is built without a bundled crypto provider: install ring's
        // once for the process (an error means one is installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .user_agent(concat!("blocker/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(CrowdsecError::Client)?;
        Ok(Self { http, base })
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    fn endpoint(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        let joined = format!("{}{path}", self.base.path().trim_end_matches('/'));
        url.set_path(&joined);
        url
    }

    /// One pull of the decision stream with the bouncer's `key`.
    pub async fn stream(
        &self,
        key: &SecretString,
        startup: bool,
        q: &Query<'_>,
    ) -> Result<Stream, CrowdsecError> {
        let mut url = self.endpoint("/v1/decisions/stream");
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("startup", if startup { "true" } else { "false" });
            let lower: Vec<String> = q.scopes.iter().map(|s| s.to_lowercase()).collect();
            for (name, values) in [
                ("scopes", &lower[..]),
                ("origins", q.origins),
                ("scenarios_containing", q.scenarios_containing),
                ("scenarios_not_containing", q.scenarios_not_containing),
            ] {
                if !values.is_empty() {
                    pairs.append_pair(name, &values.join(","));
                }
            }
        }
        let mut header =
            HeaderValue::from_str(key.expose_secret()).map_err(|_| CrowdsecError::BadKey)?;
        header.set_sensitive(true);
        let resp = self
            .http
            .get(url)
            .header("X-Api-Key", header)
            .send()
            .await
            .map_err(CrowdsecError::Http)?;
        let body = checked(resp).await?;
        serde_json::from_slice(&body).map_err(CrowdsecError::Json)
    }

    /// Logs a machine in; returns its JWT.
    pub async fn login(
        &self,
        machine_id: &str,
        password: &SecretString,
        scenarios: &[&str],
    ) -> Result<SecretString, CrowdsecError> {
        #[derive(Serialize)]
        struct Login<'a> {
            machine_id: &'a str,
            password: &'a str,
            scenarios: &'a [&'a str],
        }
        #[derive(Deserialize)]
        struct Token {
            token: String,
        }
        let resp = self
            .http
            .post(self.endpoint("/v1/watchers/login"))
            .header("Content-Type", "application/json")
            .body(
                serde_json::to_vec(&Login {
                    machine_id,
                    password: password.expose_secret(),
                    scenarios,
                })
                .map_err(CrowdsecError::Json)?,
            )
            .send()
            .await
            .map_err(CrowdsecError::Http)?;
        let body = checked(resp).await?;
        let t: Token = serde_json::from_slice(&body).map_err(CrowdsecError::Json)?;
        Ok(SecretString::from(t.token))
    }

    /// Pushes alerts as the machine whose JWT is `token`; returns the ids
    /// the API gave them.
    pub async fn push_alerts(
        &self,
        token: &SecretString,
        alerts: &[AlertBody],
    ) -> Result<Vec<String>, CrowdsecError> {
        let mut header = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| CrowdsecError::BadKey)?;
        header.set_sensitive(true);
        let resp = self
            .http
            .post(self.endpoint("/v1/alerts"))
            .header("Authorization", header)
            .header("Content-Type", "application/json")
            .body(serde_json::to_vec(alerts).map_err(CrowdsecError::Json)?)
            .send()
            .await
            .map_err(CrowdsecError::Http)?;
        let body = checked(resp).await?;
        serde_json::from_slice(&body).map_err(CrowdsecError::Json)
    }
}

/// The body of a 2xx answer, or the status as an error (with at most a
/// line of the body: the API explains itself there).
async fn checked(resp: reqwest::Response) -> Result<Vec<u8>, CrowdsecError> {
    let status = resp.status();
    let body = resp.bytes().await.map_err(CrowdsecError::Http)?;
    if status.is_success() {
        return Ok(body.to_vec());
    }
    let text: String = String::from_utf8_lossy(&body)
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    Err(CrowdsecError::Status {
        status: status.as_u16(),
        hint: match status {
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => {
                "check the API key (`cscli bouncers add NAME` prints one) or the machine's password"
            }
            _ => "",
        },
        body: text,
    })
}

/// An alert for `POST /v1/alerts` (the fields the API requires).
#[derive(Clone, Debug, Serialize)]
pub struct AlertBody {
    pub scenario: String,
    pub scenario_hash: String,
    pub scenario_version: String,
    pub message: String,
    pub events_count: i32,
    pub start_at: String,
    pub stop_at: String,
    pub capacity: i32,
    pub leakspeed: String,
    pub simulated: bool,
    pub remediation: bool,
    pub events: Vec<AlertEvent>,
    pub source: AlertSource,
    pub decisions: Vec<AlertDecision>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AlertEvent {
    pub timestamp: String,
    pub meta: Vec<Meta>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Meta {
    pub key: String,
    pub value: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct AlertSource {
    pub scope: String,
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
}

/// The ban an alert asks the API to distribute to its other bouncers.
#[derive(Clone, Debug, Serialize)]
pub struct AlertDecision {
    pub origin: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub scope: String,
    pub value: String,
    pub duration: String,
    pub scenario: String,
    pub simulated: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let d = |s| parse_go_duration(s).unwrap().unwrap();
        assert_eq!(d("1h"), Duration::from_secs(3600));
        assert_eq!(d("3h59m58s"), Duration::from_secs(4 * 3600 - 2));
        let frac = d("3h59m58.886821199s");
        assert_eq!(frac.as_secs(), 4 * 3600 - 2);
        assert!(frac.subsec_millis() == 886, "{frac:?}");
        assert_eq!(d("168h0m0s"), Duration::from_secs(7 * 86_400));
        assert_eq!(d("500ms"), Duration::from_millis(500));
        assert_eq!(d("300µs"), Duration::from_micros(300));
        assert_eq!(d("0s"), Duration::ZERO);
        assert_eq!(d("0"), Duration::ZERO);
        assert_eq!(parse_go_duration("-11.654122ms"), Some(None));
        for bad in ["", "1x", "h", "1h-2m", "1..2s", "-", "4 h"] {
            assert_eq!(parse_go_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn stream_parses_nulls_and_unknown_fields() {
        let s: Stream = serde_json::from_str(r#"{"deleted":null,"new":null}"#).unwrap();
        assert_eq!(s, Stream::default());
        let s: Stream = serde_json::from_str(
            r#"{"deleted":[],"new":[{"duration":"59m53.2s","id":1,"origin":"cscli","scenario":"manual 'ban' from 'x'","scope":"Ip","type":"ban","value":"198.18.0.5","until":"later","uuid":"u"}]}"#,
        )
        .unwrap();
        assert_eq!(s.new.len(), 1);
        assert_eq!(s.new[0].kind, "ban");
        assert_eq!(s.new[0].value, "198.18.0.5");
    }

    #[test]
    fn urls_are_checked_and_endpoints_joined() {
        let t = Duration::from_secs(5);
        assert!(matches!(
            Client::new("http://bouncer:secret@127.0.0.1:8080", t),
            Err(CrowdsecError::CredentialsInUrl)
        ));
        assert!(matches!(
            Client::new("127.0.0.1:8080", t),
            Err(CrowdsecError::BadUrl { .. })
        ));
        let c = Client::new("http://127.0.0.1:8080/", t).unwrap();
        assert_eq!(
            c.endpoint("/v1/decisions/stream").as_str(),
            "http://127.0.0.1:8080/v1/decisions/stream"
        );
        let c = Client::new("https://lapi.example.invalid/crowdsec", t).unwrap();
        assert_eq!(
            c.endpoint("/v1/alerts").as_str(),
            "https://lapi.example.invalid/crowdsec/v1/alerts"
        );
    }
}

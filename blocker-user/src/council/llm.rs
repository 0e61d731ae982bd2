//! LLM council members over any OpenAI-compatible chat completions endpoint
//! (OpenAI, vLLM, llama.cpp's server, Ollama, ...), through `async-openai`.
//!
//! An [`LlmAgent`] can do nothing but return typed proposals and ballots:
//! every reply is parsed by [`super::reply`] against a strict schema, a bad
//! reply is re-asked once with the reason, and a second bad reply (or a
//! timeout, or an endpoint that keeps failing) makes the agent abstain for
//! the round. Calls are bounded by a per-call timeout, 429 and 5xx answers
//! are retried with exponential backoff, and a cancelled debate drops the
//! calls in flight.
//!
//! The API key comes from `OPENAI_API_KEY` only, is held as a secret, is
//! sent as a header marked sensitive, and is never logged or journaled.

use std::{collections::BTreeMap, net::IpAddr, sync::Arc, time::Duration};

use async_openai::{
    config::Config as OpenAiConfig,
    traits::RequestOptionsBuilder,
    types::chat::{
        ChatCompletionRequestAssistantMessage, ChatCompletionRequestMessage,
        ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage,
        CreateChatCompletionRequest, ResponseFormat,
    },
};
use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use super::{
    Agent, AgentError, Ballot, Brief, Debate, Draft, Exchange, Judge, Proposal, Turn, TurnFailure,
    Usage, Vote,
    prompt::{self, Component},
    reply::{self, Check},
    truncate,
};
use crate::text::sanitize_text;

/// Where the key is read from.
pub const API_KEY_ENV: &str = "OPENAI_API_KEY";
/// Where the base URL is read from when the config leaves it empty.
pub const BASE_URL_ENV: &str = "OPENAI_BASE_URL";
/// OpenAI's own endpoint, the last fallback.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// Longest rejected reply kept in the transcript and sent back on a re-ask.
const MAX_KEPT_REPLY: usize = 4096;
/// Longest backoff between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Per-role settings (`[council.llm.roles.<role>]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmRoleConfig {
    /// Model for this role; empty: `[council.llm] model`.
    pub model: String,
    /// Replaces the role's embedded system prompt (the protocol and reply
    /// schema are always appended). Required for roles without one.
    pub system_prompt: String,
    /// Components whose facts the role sees; empty: its own component for
    /// the built-in roles, all of them for others.
    pub facts: Vec<Component>,
}

/// `[council.llm]` in the config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// Base URL of the OpenAI-compatible API; empty: `$OPENAI_BASE_URL`,
    /// else OpenAI's.
    pub base_url: String,
    /// Model name, as the server knows it.
    pub model: String,
    /// Longest a single HTTP call may take (connect, queue, generate).
    #[serde(with = "crate::ttl::duration")]
    pub timeout: Duration,
    /// Retries of a call answered with 429 or 5xx, or that could not connect.
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one (at most 10s).
    #[serde(with = "crate::ttl::duration")]
    pub backoff: Duration,
    /// Ask for JSON mode (`response_format: json_object`); turn off for
    /// servers that reject the parameter.
    pub json_mode: bool,
    /// Sampling temperature.
    pub temperature: f32,
    /// Most tokens a reply may have.
    pub max_tokens: u32,
    /// Longest reply accepted, in bytes; longer ones are rejected.
    pub max_reply_bytes: usize,
    /// Have a judge summarise every debate (one more call; advisory only).
    pub judge: bool,
    /// Model of the judge; empty: `model`.
    pub judge_model: String,
    /// Per-role overrides.
    pub roles: BTreeMap<String, LlmRoleConfig>,
    /// Calls and tokens per minute and per day (`[council.llm.budget]`).
    pub budget: super::budget::BudgetConfig,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            base_url: String::new(),
            model: "gpt-4o-mini".into(),
            timeout: Duration::from_secs(30),
            retries: 2,
            backoff: Duration::from_millis(500),
            json_mode: true,
            temperature: 0.2,
            max_tokens: 800,
            max_reply_bytes: 8192,
            judge: false,
            judge_model: String::new(),
            roles: BTreeMap::new(),
            budget: super::budget::BudgetConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("[council.llm] base_url {0:?} is not an http(s) URL")]
    BadUrl(String),
    #[error("[council.llm] base_url must not carry credentials; put the key in {API_KEY_ENV}")]
    CredentialsInUrl,
    #[error("role {0:?} has no embedded system prompt: set [council.llm.roles.{0}] system_prompt")]
    NoPrompt(String),
    #[error("building the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl LlmConfig {
    /// The base URL to use: the config's, else `$OPENAI_BASE_URL`, else OpenAI's.
    pub fn resolved_base_url(&self) -> String {
        if !self.base_url.is_empty() {
            return self.base_url.clone();
        }
        std::env::var(BASE_URL_ENV)
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string())
    }

    /// The model of `role`.
    pub fn model_for(&self, role: &str) -> &str {
        match self.roles.get(role) {
            Some(r) if !r.model.is_empty() => &r.model,
            _ => &self.model,
        }
    }

    /// The full system prompt of `role`.
    pub fn system_prompt_for(&self, role: &str) -> Result<String, LlmError> {
        let custom = self
            .roles
            .get(role)
            .map(|r| r.system_prompt.as_str())
            .unwrap_or("");
        let role_prompt = if custom.is_empty() {
            prompt::default_role_prompt(role).ok_or_else(|| LlmError::NoPrompt(role.to_string()))?
        } else {
            custom
        };
        Ok(prompt::system_prompt(role_prompt))
    }

    /// The components whose facts `role` sees.
    pub fn components_for(&self, role: &str) -> Vec<Component> {
        match self.roles.get(role) {
            Some(r) if !r.facts.is_empty() => r.facts.clone(),
            _ => Component::of_role(role).map_or_else(|| Component::ALL.to_vec(), |c| vec![c]),
        }
    }
}

/// The endpoint's settings as async-openai needs them. The key is only
/// exposed while building the header, which is marked sensitive so that no
/// HTTP-layer debug output prints it; a key-less endpoint (a local server)
/// gets no Authorization header at all.
#[derive(Clone)]
struct EndpointConfig {
    base: String,
    key: SecretString,
}

impl OpenAiConfig for EndpointConfig {
    fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        let key = self.key.expose_secret();
        if !key.is_empty()
            && let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {key}"))
        {
            v.set_sensitive(true);
            h.insert(AUTHORIZATION, v);
        }
        h
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn query(&self) -> Vec<(&str, &str)> {
        Vec::new()
    }

    fn api_base(&self) -> &str {
        &self.base
    }

    fn api_key(&self) -> &SecretString {
        &self.key
    }
}

tokio::task_local! {
    /// The `Retry-After` of the last response of the call in progress
    /// (see [`RetryAfterWatch`]).
    static RETRY_AFTER: std::cell::Cell<Option<Duration>>;
}

/// The plain reqwest service, plus a look at each response's `Retry-After`
/// header: async-openai turns a 429/503 into an error without its
/// headers, so the delay the server asks for is noted here, on the
/// calling task, for `Caller::call`.
#[derive(Clone, Debug)]
struct RetryAfterWatch(async_openai::middleware::ReqwestService);

type ResponseFuture = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = Result<reqwest::Response, async_openai::error::OpenAIError>,
            > + Send,
    >,
>;

impl tower_service::Service<async_openai::middleware::HttpRequestFactory> for RetryAfterWatch {
    type Response = reqwest::Response;
    type Error = async_openai::error::OpenAIError;
    type Future = ResponseFuture;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: async_openai::middleware::HttpRequestFactory) -> Self::Future {
        let sent = self.0.call(request);
        Box::pin(async move {
            let response = sent.await?;
            let wait = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
            // Outside a call's scope (nobody asked): nothing to note.
            let _ = RETRY_AFTER.try_with(|c| c.set(wait));
            Ok(response)
        })
    }
}

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP date (a
/// date in the past means now).
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Up to `max` of random extra wait, so that agents (and daemons) told to
/// back off at the same moment do not all come back at the same moment.
fn jitter(max: Duration) -> Duration {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(h.finish().checked_rem(nanos).unwrap_or(0))
}

/// Longest `Retry-After` honoured outside a debate with a deadline; a
/// server asking for more makes the agent abstain instead.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// One OpenAI-compatible server, shared by every LLM agent of a council
/// (one connection pool).
pub struct Endpoint {
    client: async_openai::Client<EndpointConfig>,
    base: String,
    has_key: bool,
    budget: Option<Arc<super::budget::Budget>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("base", &self.base)
            .field("has_key", &self.has_key)
            .finish()
    }
}

impl Endpoint {
    /// An endpoint at `base_url`, authenticated with `key` when it is set.
    pub fn new(base_url: &str, key: Option<SecretString>) -> Result<Self, LlmError> {
        let base = base_url.trim_end_matches('/').to_string();
        let Some(rest) = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"))
        else {
            return Err(LlmError::BadUrl(sanitize_text(base_url)));
        };
        let authority = rest.split('/').next().unwrap_or("");
        if authority.is_empty() {
            return Err(LlmError::BadUrl(sanitize_text(base_url)));
        }
        if authority.contains('@') {
            return Err(LlmError::CredentialsInUrl);
        }
        // reqwest is built without a bundled crypto provider: install ring's
        // once for the process (an error means one is installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let key = key.unwrap_or_else(|| SecretString::from(String::new()));
        let has_key = !key.expose_secret().is_empty();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        // async-openai's default executor retries 429/5xx on its own (three
        // times, fixed backoff) and would hide those calls from the
        // accounting; the plain reqwest service leaves retries, their
        // backoff and their count to `Caller::call`.
        let client = async_openai::Client::build(
            http.clone(),
            EndpointConfig {
                base: base.clone(),
                key,
            },
        )
        .with_http_service(RetryAfterWatch(
            async_openai::middleware::ReqwestService::new(http),
        ));
        Ok(Self {
            client,
            base,
            has_key,
            budget: None,
        })
    }

    /// Every call through this endpoint is taken from `budget` first; past
    /// it, the call is not made and the agent abstains.
    pub fn with_budget(mut self, budget: Arc<super::budget::Budget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The endpoint of `cfg`, with the key from `$OPENAI_API_KEY`.
    pub fn from_env(cfg: &LlmConfig) -> Result<Self, LlmError> {
        let key = std::env::var(API_KEY_ENV)
            .ok()
            .filter(|k| !k.is_empty())
            .map(SecretString::from);
        Self::new(&cfg.resolved_base_url(), key)
    }

    /// The base URL (never carries credentials: [`Endpoint::new`] refuses them).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn has_key(&self) -> bool {
        self.has_key
    }
}

/// What every call of one agent shares.
#[derive(Clone, Debug)]
struct CallSettings {
    model: String,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
    json_mode: bool,
    temperature: f32,
    max_tokens: u32,
    max_reply_bytes: usize,
}

impl CallSettings {
    fn new(cfg: &LlmConfig, model: &str) -> Self {
        Self {
            model: model.to_string(),
            timeout: cfg.timeout,
            retries: cfg.retries,
            backoff: cfg.backoff,
            json_mode: cfg.json_mode,
            temperature: cfg.temperature,
            max_tokens: cfg.max_tokens,
            max_reply_bytes: cfg.max_reply_bytes,
        }
    }
}

/// A chat completion as any OpenAI-compatible server returns it, read
/// leniently: only the content and the usage matter, and local servers
/// differ in the rest.
#[derive(Debug, Default, Deserialize)]
struct ChatReply {
    #[serde(default)]
    choices: Vec<ChatChoice>,
    #[serde(default)]
    usage: Option<ChatUsage>,
}

#[derive(Debug, Default, Deserialize)]
struct ChatChoice {
    #[serde(default)]
    message: Option<ChatMessage>,
}

#[derive(Debug, Default, Deserialize)]
struct ChatMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ChatUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// One conversation with the endpoint: a system prompt, a user prompt, and
/// possibly one re-ask.
struct Caller<'a> {
    endpoint: &'a Endpoint,
    settings: &'a CallSettings,
    /// Agent name, sent as `X-Blocker-Agent` (lets a server or proxy tell
    /// the roles apart; the test server scripts replies by it).
    name: &'a str,
    round: u32,
}

impl Caller<'_> {
    /// Asks, validates with `parse`, re-asks once with the reason, then gives up.
    async fn converse<T>(
        &self,
        system: &str,
        prompt: String,
        parse: impl Fn(&str) -> Result<T, reply::ReplyError>,
    ) -> Result<Turn<T>, TurnFailure> {
        let mut messages: Vec<ChatCompletionRequestMessage> = vec![
            ChatCompletionRequestSystemMessage::from(system).into(),
            ChatCompletionRequestUserMessage::from(prompt.as_str()).into(),
        ];
        let mut usage = Usage::default();
        let mut exchanges = Vec::new();
        let mut asked = prompt;
        for attempt in 0..2 {
            let content = match self.call(&messages, &mut usage).await {
                Ok(c) => c,
                Err(error) => {
                    return Err(TurnFailure {
                        error,
                        usage,
                        exchanges,
                    });
                }
            };
            match parse(&content) {
                Ok(output) => {
                    exchanges.push(Exchange {
                        prompt: asked,
                        reply: content,
                        rejected: None,
                    });
                    return Ok(Turn {
                        output,
                        usage,
                        exchanges,
                    });
                }
                Err(why) => {
                    let why = why.to_string();
                    warn!(
                        "council agent {} (round {}): reply rejected{}: {why}",
                        self.name,
                        self.round,
                        if attempt == 0 { ", asking again" } else { "" }
                    );
                    let kept = truncate(&content, MAX_KEPT_REPLY);
                    exchanges.push(Exchange {
                        prompt: std::mem::take(&mut asked),
                        reply: kept.clone(),
                        rejected: Some(why.clone()),
                    });
                    if attempt == 1 {
                        return Err(TurnFailure {
                            error: AgentError::Invalid(why),
                            usage,
                            exchanges,
                        });
                    }
                    asked = prompt::reask(&why);
                    messages
                        .push(ChatCompletionRequestAssistantMessage::from(kept.as_str()).into());
                    messages.push(ChatCompletionRequestUserMessage::from(asked.as_str()).into());
                }
            }
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// One request, retried on 429/5xx/connection errors; the reply's text.
    async fn call(
        &self,
        messages: &[ChatCompletionRequestMessage],
        usage: &mut Usage,
    ) -> Result<String, AgentError> {
        let s = self.settings;
        #[allow(deprecated)] // `max_tokens`: what every OpenAI-compatible server understands.
        let request = CreateChatCompletionRequest {
            model: s.model.clone(),
            messages: messages.to_vec(),
            temperature: Some(s.temperature),
            max_tokens: Some(s.max_tokens),
            response_format: s.json_mode.then_some(ResponseFormat::JsonObject),
            stream: Some(false),
            ..Default::default()
        };
        let mut attempt = 0;
        loop {
            if let Some(b) = &self.endpoint.budget {
                b.take_call()
                    .map_err(|e| AgentError::Budget(e.to_string()))?;
            }
            usage.calls += 1;
            let chat = self
                .endpoint
                .client
                .chat()
                .header("x-blocker-agent", self.name)
                .and_then(|c| c.header("x-blocker-round", self.round.to_string()))
                .map_err(|e| AgentError::Failed(e.to_string()))?;
            let sent = chat.create_byot::<_, ChatReply>(&request);
            let (result, retry_after) = RETRY_AFTER
                .scope(std::cell::Cell::new(None), async {
                    let r = tokio::time::timeout(s.timeout, sent).await;
                    (r, RETRY_AFTER.with(std::cell::Cell::get))
                })
                .await;
            let result = match result {
                Err(_) => return Err(AgentError::Timeout(s.timeout)),
                Ok(r) => r,
            };
            match result {
                Ok(reply) => {
                    if let Some(u) = &reply.usage {
                        usage.prompt_tokens += u.prompt_tokens;
                        usage.completion_tokens += u.completion_tokens;
                        if let Some(b) = &self.endpoint.budget {
                            b.add_tokens(u.prompt_tokens + u.completion_tokens);
                        }
                    }
                    let message = reply
                        .choices
                        .into_iter()
                        .next()
                        .and_then(|c| c.message)
                        .unwrap_or_default();
                    return Ok(match (message.content, message.refusal) {
                        (Some(c), _) if !c.trim().is_empty() => c,
                        (_, Some(r)) => format!("(refusal) {r}"),
                        _ => String::new(),
                    });
                }
                Err(e) => {
                    let why = describe(&e);
                    if attempt < s.retries && retryable(&e) {
                        let backoff = s
                            .backoff
                            .saturating_mul(1 << attempt.min(16))
                            .min(MAX_BACKOFF);
                        // The server's own wait when it gives one, else
                        // exponential backoff; plus up to half a backoff
                        // of jitter either way.
                        let delay = retry_after.unwrap_or(backoff) + jitter(backoff / 2);
                        // Never past the debate's deadline (nothing would
                        // come of the reply): abstain now, so the debate
                        // (and its fallback) can end sooner.
                        let left = super::DEBATE_DEADLINE
                            .try_with(|d| d.saturating_duration_since(tokio::time::Instant::now()))
                            .unwrap_or(MAX_RETRY_AFTER);
                        if delay >= left {
                            return Err(AgentError::Failed(format!(
                                "{why}; the server asks to retry after {}, past the debate's deadline (in {})",
                                humantime::format_duration(Duration::from_secs(delay.as_secs())),
                                humantime::format_duration(Duration::from_secs(left.as_secs()))
                            )));
                        }
                        warn!(
                            "council agent {} (round {}): {why}; retrying in {delay:?}",
                            self.name, self.round
                        );
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(AgentError::Failed(why));
                }
            }
        }
    }
}

/// Rate limits, server errors and connection failures are worth another try.
fn retryable(e: &async_openai::error::OpenAIError) -> bool {
    use async_openai::error::OpenAIError;
    match e {
        OpenAIError::ApiError(r) => {
            r.status_code.as_u16() == 429 || r.status_code.is_server_error()
        }
        OpenAIError::Reqwest(r) => {
            r.is_connect()
                || r.status()
                    .is_some_and(|s| s.as_u16() == 429 || s.is_server_error())
        }
        _ => false,
    }
}

/// A short, printable description of a failed call (server text included
/// is sanitized and cut; it never holds the key, which is only a header).
fn describe(e: &async_openai::error::OpenAIError) -> String {
    use async_openai::error::OpenAIError;
    let s = match e {
        OpenAIError::ApiError(r) => format!("HTTP {}: {}", r.status_code, r.api_error.message),
        OpenAIError::JSONDeserialize(err, _) => format!("unreadable response: {err}"),
        other => other.to_string(),
    };
    truncate(&sanitize_text(&s), 300)
}

/// A council member backed by a model.
pub struct LlmAgent {
    name: String,
    system: String,
    components: Vec<Component>,
    settings: CallSettings,
    endpoint: Arc<Endpoint>,
    max_rounds: u32,
}

impl LlmAgent {
    /// The agent for `role`, configured by `cfg` (model and prompt overrides).
    pub fn new(
        role: &str,
        cfg: &LlmConfig,
        endpoint: Arc<Endpoint>,
        max_rounds: u32,
    ) -> Result<Self, LlmError> {
        Ok(Self {
            name: role.to_string(),
            system: cfg.system_prompt_for(role)?,
            components: cfg.components_for(role),
            settings: CallSettings::new(cfg, cfg.model_for(role)),
            endpoint,
            max_rounds,
        })
    }

    fn caller(&self, round: u32) -> Caller<'_> {
        Caller {
            endpoint: &self.endpoint,
            settings: &self.settings,
            name: &self.name,
            round,
        }
    }

    fn check<'a>(&self, evidence: &'a [IpAddr]) -> Check<'a> {
        Check {
            evidence,
            max_reply_bytes: self.settings.max_reply_bytes,
        }
    }
}

#[async_trait]
impl Agent for LlmAgent {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "llm"
    }

    fn model(&self) -> Option<&str> {
        Some(&self.settings.model)
    }

    fn system_prompt(&self) -> Option<&str> {
        Some(&self.system)
    }

    async fn propose(&self, brief: &Brief) -> Result<Turn<Vec<Draft>>, TurnFailure> {
        let evidence = brief.incident.addresses();
        let check = self.check(&evidence);
        let prompt = prompt::propose(brief, &self.components, self.max_rounds);
        debug!(
            "council agent {} proposes ({} prompt bytes)",
            self.name,
            prompt.len()
        );
        self.caller(1)
            .converse(&self.system, prompt, |c| reply::proposals(c, &check))
            .await
    }

    async fn review(
        &self,
        brief: &Brief,
        round: u32,
        open: &[Proposal],
        votes: &[Vote],
    ) -> Result<Turn<Vec<Ballot>>, TurnFailure> {
        // Nothing to vote on but one's own proposals: no call needed.
        if open.iter().all(|p| p.author == self.name) {
            return Ok(Turn::plain(Vec::new()));
        }
        let evidence = brief.incident.addresses();
        let check = self.check(&evidence);
        let prompt = prompt::review(
            brief,
            &self.components,
            &self.name,
            round,
            self.max_rounds,
            open,
            votes,
        );
        self.caller(round)
            .converse(&self.system, prompt, |c| {
                reply::ballots(c, &check, &self.name, open)
            })
            .await
    }
}

/// The optional judge: one call after the tally, for a summary.
pub struct LlmJudge {
    settings: CallSettings,
    endpoint: Arc<Endpoint>,
}

impl LlmJudge {
    pub fn new(cfg: &LlmConfig, endpoint: Arc<Endpoint>) -> Self {
        let model = if cfg.judge_model.is_empty() {
            &cfg.model
        } else {
            &cfg.judge_model
        };
        Self {
            settings: CallSettings::new(cfg, model),
            endpoint,
        }
    }
}

#[async_trait]
impl Judge for LlmJudge {
    async fn summarise(&self, brief: &Brief, debate: &Debate) -> Result<Turn<String>, TurnFailure> {
        let evidence = brief.incident.addresses();
        let check = Check {
            evidence: &evidence,
            max_reply_bytes: self.settings.max_reply_bytes,
        };
        let caller = Caller {
            endpoint: &self.endpoint,
            settings: &self.settings,
            name: "judge",
            round: debate.rounds + 1,
        };
        caller
            .converse(prompt::JUDGE, prompt::judge(brief, debate), |c| {
                reply::summary(c, &check)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls_are_checked_and_never_carry_credentials() {
        assert!(Endpoint::new("http://127.0.0.1:8080/v1/", None).is_ok());
        assert_eq!(
            Endpoint::new("http://127.0.0.1:8080/v1/", None)
                .unwrap()
                .base_url(),
            "http://127.0.0.1:8080/v1"
        );
        assert!(matches!(
            Endpoint::new("ftp://x", None),
            Err(LlmError::BadUrl(_))
        ));
        assert!(matches!(
            Endpoint::new("http://", None),
            Err(LlmError::BadUrl(_))
        ));
        assert!(matches!(
            Endpoint::new("https://user:sk-secret@example.invalid/v1", None),
            Err(LlmError::CredentialsInUrl)
        ));
    }

    #[test]
    fn key_header_is_sensitive_and_absent_without_a_key() {
        let c = EndpointConfig {
            base: "http://x".into(),
            key: SecretString::from("sk-test-123".to_string()),
        };
        let h = c.headers();
        let v = h.get(AUTHORIZATION).unwrap();
        assert!(v.is_sensitive());
        assert!(!format!("{v:?}").contains("sk-test"));
        let none = EndpointConfig {
            base: "http://x".into(),
            key: SecretString::from(String::new()),
        };
        assert!(none.headers().get(AUTHORIZATION).is_none());
        let e = Endpoint::new(
            "http://127.0.0.1:1/v1",
            Some(SecretString::from("sk-test-123".to_string())),
        )
        .unwrap();
        assert!(!format!("{e:?}").contains("sk-test"));
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(90))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn jitter_stays_below_its_bound_and_varies() {
        let max = Duration::from_millis(100);
        let draws: std::collections::HashSet<Duration> = (0..50).map(|_| jitter(max)).collect();
        assert!(draws.iter().all(|d| *d < max));
        assert!(draws.len() > 10, "{draws:?}");
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn role_settings_fall_back_to_the_defaults() {
        let mut cfg = LlmConfig::default();
        cfg.roles.insert(
            "kernel".into(),
            LlmRoleConfig {
                model: "big".into(),
                ..LlmRoleConfig::default()
            },
        );
        cfg.roles.insert(
            "auditor".into(),
            LlmRoleConfig {
                system_prompt: "You audit.".into(),
                facts: vec![Component::Jail],
                ..LlmRoleConfig::default()
            },
        );
        assert_eq!(cfg.model_for("kernel"), "big");
        assert_eq!(cfg.model_for("host"), "gpt-4o-mini");
        assert_eq!(cfg.components_for("host"), vec![Component::Host]);
        assert_eq!(cfg.components_for("auditor"), vec![Component::Jail]);
        assert_eq!(cfg.components_for("other"), Component::ALL.to_vec());
        assert!(
            cfg.system_prompt_for("auditor")
                .unwrap()
                .starts_with("You audit.")
        );
        assert!(matches!(
            cfg.system_prompt_for("other"),
            Err(LlmError::NoPrompt(_))
        ));
    }
}

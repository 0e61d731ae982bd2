//! A local OpenAI-compatible chat completions server for the LLM council's
//! tests and benchmark: real HTTP/1.1 on 127.0.0.1, replies scripted per
//! agent and round (and per attempt, for re-asks and retries), a fixed
//! per-call latency, error injection (invalid JSON, 429, 5xx, a call that
//! never answers), `usage` in every reply, and a record of every request
//! with its arrival and reply times.
//!
//! It is not a mock of the client: blocker's `async-openai` client talks
//! to it over a socket exactly as it would to a real server. Agents are
//! told apart by the `X-Blocker-Agent` and `X-Blocker-Round` headers the
//! client sends.
//!
//! Token counts are deterministic: one token per 4 bytes of message
//! content (rounded up), for prompts and completions alike.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use blocker::council::prompt::DATA_OPEN;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_util::sync::CancellationToken;

/// What the server answers to one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A completion whose message content is this JSON, serialized.
    Json(Value),
    /// A completion whose message content is this text, verbatim (invalid
    /// JSON, prose, an over-long reply...).
    Text(String),
    /// An HTTP error with an OpenAI-style error body (429, 500, 503...).
    Status(u16),
    /// An HTTP error with a `Retry-After` header of this value (seconds or
    /// an HTTP date).
    RetryAfter(u16, String),
    /// No answer at all: the connection stays open until the client gives
    /// up (its timeout, or a cancelled debate).
    Hang,
}

/// The answer for requests with no scripted reply left.
pub type Responder = dyn Fn(&Request) -> Reply + Send + Sync;

/// Replies per (agent, round), consumed in order, one per request; the
/// fallback answers the rest.
pub struct Script {
    replies: HashMap<(String, u32), VecDeque<Reply>>,
    fallback: Box<Responder>,
}

impl Script {
    pub fn new(fallback: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        Self {
            replies: HashMap::new(),
            fallback: Box::new(fallback),
        }
    }

    /// `agent`'s replies in `round`, one per call (the first call, then the
    /// re-ask or the retry).
    pub fn on(mut self, agent: &str, round: u32, replies: Vec<Reply>) -> Self {
        self.replies
            .entry((agent.to_string(), round))
            .or_default()
            .extend(replies);
        self
    }
}

/// One recorded request.
#[derive(Clone, Debug)]
pub struct Request {
    pub agent: String,
    pub round: u32,
    /// 0 for the first request of this agent in this round, then 1, ...
    pub attempt: u32,
    /// Since the server started: the request was read completely.
    pub arrived: Duration,
    /// Since the server started: the reply was sent (stamped just before
    /// writing it; None: never, e.g. a hang the client gave up on).
    pub replied: Option<Duration>,
    /// The client closed the connection before any reply (timeout or
    /// cancellation).
    pub abandoned: bool,
    pub path: String,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Value,
    /// Status sent.
    pub status: u16,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `(role, content)` of every message.
    pub fn messages(&self) -> Vec<(String, String)> {
        self.body["messages"]
            .as_array()
            .map(|ms| {
                ms.iter()
                    .map(|m| {
                        (
                            m["role"].as_str().unwrap_or("").to_string(),
                            m["content"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The data blocks of the first user message, parsed.
    pub fn data(&self) -> Vec<Value> {
        let Some((_, prompt)) = self.messages().into_iter().find(|(r, _)| r == "user") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut lines = prompt.lines();
        while let Some(l) = lines.next() {
            if l == DATA_OPEN
                && let Some(data) = lines.next()
                && let Ok(v) = serde_json::from_str(data)
            {
                out.push(v);
            }
        }
        out
    }

    /// The open proposals of a review prompt, as the prompt shows them
    /// (`id`, `by`, `round`, `action`, `justification`).
    pub fn open(&self) -> Vec<Value> {
        self.data()
            .iter()
            .filter_map(|d| d["open"].as_array().cloned())
            .flatten()
            .collect()
    }

    /// `(id, author)` of the open proposals of a review prompt.
    pub fn open_proposals(&self) -> Vec<(u32, String)> {
        self.open()
            .iter()
            .map(|p| {
                (
                    p["id"].as_u64().unwrap_or(0) as u32,
                    p["by"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// The incident's suspect, from the prompt.
    pub fn suspect(&self) -> Option<String> {
        self.data()
            .first()?
            .get("incident")?
            .get("suspect")?
            .as_str()
            .map(str::to_string)
    }
}

/// A `{"proposals": [...]}` reply from `(action, justification)` pairs.
pub fn proposals(items: &[(Value, &str)]) -> Reply {
    Reply::Json(json!({
        "proposals": items.iter().map(|(a, j)| json!({"action": a, "justification": j})).collect::<Vec<_>>()
    }))
}

/// `{"type":"block","target":target,"ttl_secs":ttl}`.
pub fn block(target: &str, ttl: u64) -> Value {
    json!({"type": "block", "target": target, "ttl_secs": ttl})
}

/// A vote for a `{"votes": [...]}` reply.
pub fn vote(proposal: u32, stance: &str, reason: &str) -> Value {
    json!({"proposal": proposal, "stance": stance, "reason": reason})
}

/// An objection with an alternative.
pub fn object_with(proposal: u32, reason: &str, alternative: Value, why: &str) -> Value {
    json!({"proposal": proposal, "stance": "object", "reason": reason,
           "alternative": {"action": alternative, "justification": why}})
}

pub fn votes(items: Vec<Value>) -> Reply {
    Reply::Json(json!({ "votes": items }))
}

/// The agreeable model: proposes nothing, approves every open proposal
/// that is not its own.
pub fn agreeable(req: &Request) -> Reply {
    if req.round <= 1 {
        return proposals(&[]);
    }
    if req.agent == "judge" {
        return Reply::Json(json!({"summary": "The council agreed."}));
    }
    votes(
        req.open_proposals()
            .into_iter()
            .filter(|(_, by)| *by != req.agent)
            .map(|(id, _)| vote(id, "approve", "consistent with the evidence"))
            .collect(),
    )
}

struct Shared {
    script: Mutex<Script>,
    records: Mutex<Vec<Request>>,
    attempts: Mutex<HashMap<(String, u32), u32>>,
    start: Instant,
    latency: Duration,
}

/// The running server; stops when dropped.
pub struct LlmServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LlmServer {
    /// Starts the server on its own thread (it works under synchronous
    /// tests that spawn `blocker` and under async ones alike). Every reply
    /// is sent `latency` after its request arrived.
    pub fn start(script: Script, latency: Duration) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            script: Mutex::new(script),
            records: Mutex::new(Vec::new()),
            attempts: Mutex::new(HashMap::new()),
            start: Instant::now(),
            latency,
        });
        let stop = CancellationToken::new();
        let (s, st) = (shared.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("server runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("tokio listener");
                loop {
                    tokio::select! {
                        () = st.cancelled() => break,
                        accepted = listener.accept() => {
                            let Ok((conn, _)) = accepted else { continue };
                            tokio::spawn(serve(conn, s.clone(), st.clone()));
                        }
                    }
                }
            });
            rt.shutdown_timeout(Duration::from_millis(100));
        });
        Self {
            addr,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    /// The base URL to give blocker (`--llm-base-url`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        let mut r = self.shared.records.lock().unwrap().clone();
        r.sort_by_key(|r| r.arrived);
        r
    }

    /// Requests of one round.
    pub fn round(&self, round: u32) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.round == round)
            .collect()
    }
}

impl Drop for LlmServer {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one HTTP/1.1 request: (path, headers, body).
async fn read_request(conn: &mut TcpStream) -> Option<(String, Vec<(String, String)>, Vec<u8>)> {
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if buf.len() > 1 << 20 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((path, headers, body))
}

fn tokens(bytes: usize) -> u64 {
    bytes.div_ceil(4) as u64
}

async fn serve(mut conn: TcpStream, shared: Arc<Shared>, stop: CancellationToken) {
    let Some((path, headers, body)) = read_request(&mut conn).await else {
        return;
    };
    let arrived = shared.start.elapsed();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let agent = header("x-blocker-agent").unwrap_or_default();
    let round: u32 = header("x-blocker-round")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let attempt = {
        let mut a = shared.attempts.lock().unwrap();
        let n = a.entry((agent.clone(), round)).or_insert(0);
        *n += 1;
        *n - 1
    };
    let mut req = Request {
        agent: agent.clone(),
        round,
        attempt,
        arrived,
        replied: None,
        abandoned: false,
        path,
        headers,
        body,
        status: 200,
        prompt_tokens: 0,
        completion_tokens: 0,
    };
    let prompt_bytes: usize = req.messages().iter().map(|(_, c)| c.len()).sum();
    req.prompt_tokens = tokens(prompt_bytes);
    let reply = {
        let mut script = shared.script.lock().unwrap();
        let scripted = script
            .replies
            .get_mut(&(agent, round))
            .and_then(VecDeque::pop_front);
        scripted.unwrap_or_else(|| (script.fallback)(&req))
    };
    let index = {
        let mut records = shared.records.lock().unwrap();
        records.push(req.clone());
        records.len() - 1
    };

    let retry_after = match &reply {
        Reply::RetryAfter(_, v) => format!("Retry-After: {v}\r\n"),
        _ => String::new(),
    };
    let (status, payload) = match reply {
        Reply::Hang => {
            // Wait for the client to give up (EOF) or the server to stop.
            let mut sink = [0u8; 64];
            tokio::select! {
                _ = conn.read(&mut sink) => {}
                () = stop.cancelled() => {}
            }
            shared.records.lock().unwrap()[index].abandoned = true;
            return;
        }
        Reply::Status(code) | Reply::RetryAfter(code, _) => (
            code,
            json!({"error": {"message": format!("scripted {code}"), "type": if code == 429 { "rate_limit_error" } else { "server_error" }, "param": null, "code": null}}),
        ),
        Reply::Json(v) => (200, completion(&req, &v.to_string())),
        Reply::Text(t) => (200, completion(&req, &t)),
    };
    let completion_tokens = payload["usage"]["completion_tokens"].as_u64().unwrap_or(0);
    // The fixed latency of a model, counted from arrival; a client that
    // gives up meanwhile (timeout, cancellation) is noticed.
    let mut sink = [0u8; 64];
    let waited = tokio::select! {
        () = tokio::time::sleep(shared.latency) => true,
        _ = conn.read(&mut sink) => false,
        () = stop.cancelled() => false,
    };
    if !waited {
        shared.records.lock().unwrap()[index].abandoned = true;
        return;
    }
    let text = payload.to_string();
    let reason = match status {
        200 => "OK",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n{retry_after}Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    // Recorded before the bytes go out: a client that has its answer must
    // find the record complete.
    {
        let mut records = shared.records.lock().unwrap();
        records[index].replied = Some(shared.start.elapsed());
        records[index].status = status;
        records[index].completion_tokens = completion_tokens;
    }
    let _ = conn.write_all(response.as_bytes()).await;
    let _ = conn.shutdown().await;
}

fn completion(req: &Request, content: &str) -> Value {
    let completion_tokens = tokens(content.len());
    json!({
        "id": format!("chatcmpl-test-{}-{}-{}", req.agent, req.round, req.attempt),
        "object": "chat.completion",
        "created": 1_763_726_400,
        "model": req.body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": req.prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": req.prompt_tokens + completion_tokens}
    })
}

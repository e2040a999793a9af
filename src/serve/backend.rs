//! The HTTP client of the connect and event proxies: one JSON `POST` to
//! the backend per question, over kept-alive connections (hyper's pooled
//! client), answered within a deadline.
//!
//! The backend answers every request with HTTP 200 and a JSON object with
//! `result` or `error` ([`Answer`]). Anything else is the backend failing,
//! told apart for the client and the metrics ([`Failure`]): no connection,
//! no answer by the deadline, or an answer that is not that (another
//! status, not JSON, another shape, more than [`MAX_BODY`] bytes).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Map, Value};
use tokio::time::Instant;

/// The largest answer read from a backend; a larger one is a bad response.
pub const MAX_BODY: usize = 1 << 20;

/// How long a connection to the backend is kept open without a request.
const IDLE: Duration = Duration::from_secs(60);

/// What a backend answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `{"result": …}`: the value.
    Result(Value),
    /// `{"error": {…}}`: the object.
    Error(Map<String, Value>),
}

/// Why there is no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No connection (refused, unreachable) or it broke before the answer.
    Unavailable(String),
    /// No whole answer by the deadline.
    Timeout,
    /// An answer that is not HTTP 200 with `{"result"}` or `{"error"}`.
    BadResponse(String),
}

/// The outcomes counted per backend, in the order `/metrics` shows them.
pub const OUTCOMES: [&str; 5] = ["ok", "error", "timeout", "unavailable", "bad_response"];

/// Counters of one backend's requests.
#[derive(Debug, Default)]
pub struct Counters {
    /// By outcome, as [`OUTCOMES`].
    pub outcomes: [AtomicU64; 5],
    /// The time requests took, summed, in microseconds.
    pub latency_micros: AtomicU64,
}

/// One backend URL and the pool of connections to it.
pub struct Backend {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: http::Uri,
    timeout: Duration,
    pub counters: Counters,
}

impl Backend {
    /// A client for `url` (an `http://` URL: https is not supported) that
    /// gives up after `timeout`, keeping up to `max_idle` connections open.
    pub fn new(url: &str, timeout: Duration, max_idle: usize) -> anyhow::Result<Backend> {
        let uri = check_url(url)?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE)
            .pool_max_idle_per_host(max_idle)
            .build(connector);
        Ok(Backend {
            client,
            uri,
            timeout,
            counters: Counters::default(),
        })
    }

    /// The time a request may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// POSTs `body` and reads the answer by `deadline`, counting the outcome.
    pub async fn post(&self, body: &Value, deadline: Instant) -> Result<Answer, Failure> {
        let started = Instant::now();
        let outcome = match tokio::time::timeout_at(deadline, self.exchange(body)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Failure::Timeout),
        };
        self.count(&outcome, started.elapsed());
        outcome
    }

    /// Counts an outcome that never reached the backend (a timeout while
    /// waiting for a place among the requests in flight).
    pub fn count(&self, outcome: &Result<Answer, Failure>, took: Duration) {
        let index = match outcome {
            Ok(Answer::Result(_)) => 0,
            Ok(Answer::Error(_)) => 1,
            Err(Failure::Timeout) => 2,
            Err(Failure::Unavailable(_)) => 3,
            Err(Failure::BadResponse(_)) => 4,
        };
        self.counters.outcomes[index].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.counters
            .latency_micros
            .fetch_add(micros, Ordering::Relaxed);
    }

    async fn exchange(&self, body: &Value) -> Result<Answer, Failure> {
        let request = http::Request::post(self.uri.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|error| Failure::Unavailable(error.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|error| Failure::Unavailable(describe(&error)))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|error| Failure::BadResponse(format!("reading the answer: {error}")))?
            .to_bytes();
        if status != http::StatusCode::OK {
            return Err(Failure::BadResponse(format!("status {}", status.as_u16())));
        }
        parse_answer(&body)
    }
}

/// `{"result": …}` or `{"error": {…}}`, and nothing else.
pub fn parse_answer(body: &[u8]) -> Result<Answer, Failure> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| Failure::BadResponse(format!("not JSON: {error}")))?;
    let Value::Object(mut fields) = value else {
        return Err(Failure::BadResponse("not a JSON object".into()));
    };
    match (fields.remove("result"), fields.remove("error")) {
        (Some(result), None) => Ok(Answer::Result(result)),
        (None, Some(Value::Object(error))) => Ok(Answer::Error(error)),
        (None, Some(_)) => Err(Failure::BadResponse("\"error\" is not an object".into())),
        _ => Err(Failure::BadResponse(
            "give one of \"result\" and \"error\"".into(),
        )),
    }
}

/// An `http://` URL with a host; https is not supported.
pub fn check_url(url: &str) -> anyhow::Result<http::Uri> {
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("{url:?} is not a URL"))?;
    anyhow::ensure!(
        uri.scheme_str() == Some("http") && uri.host().is_some(),
        "{url:?}: the proxy URL must be http://HOST[:PORT]/PATH (https is not supported)"
    );
    Ok(uri)
}

/// The cause of a client error, which hyper keeps in its source chain.
fn describe(error: &hyper_util::client::legacy::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_result_or_error_and_nothing_else() {
        assert_eq!(
            parse_answer(br#"{"result":{"name":"a"}}"#),
            Ok(Answer::Result(serde_json::json!({"name":"a"})))
        );
        assert!(matches!(
            parse_answer(br#"{"error":{"code":"x"}}"#),
            Ok(Answer::Error(_))
        ));
        for bad in [
            &b"<html>"[..],
            b"[1]",
            b"{}",
            br#"{"error":"x"}"#,
            br#"{"result":1,"error":{}}"#,
        ] {
            assert!(
                matches!(parse_answer(bad), Err(Failure::BadResponse(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn only_http_urls() {
        assert!(check_url("http://127.0.0.1:8000/connect").is_ok());
        assert!(check_url("https://example.com/").is_err());
        assert!(check_url("127.0.0.1:8000").is_err());
        assert!(check_url("not a url").is_err());
    }
}

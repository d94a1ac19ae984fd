//! HTTP/1.1 requests (hyper) over the same connections and TLS as the mail protocols: a GET
//! timed to the status line for the probes, a JSON POST for webhooks.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;

use crate::clock::Clock;
use crate::error::{ErrorKind, MailError};
use crate::line::open;
use crate::tls::{Endpoint, Tls, TlsInfo};

/// The status of an answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The status line as the server would write it (`HTTP/1.1 200 OK`).
    pub status_line: String,
    /// What the TLS handshake found, when the connection was encrypted.
    pub tls: Option<TlsInfo>,
}

fn hyper_kind(e: hyper::Error) -> ErrorKind {
    if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
        return ErrorKind::Closed;
    }
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return ErrorKind::from(std::io::Error::new(io.kind(), io.to_string()));
        }
        source = s.source();
    }
    ErrorKind::Protocol(e.to_string())
}

/// Stops the connection's task when the exchange ends, however it ends.
struct Abort(tokio::task::JoinHandle<()>);

impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn exchange(
    at: &Endpoint<'_>,
    request: Request<Full<Bytes>>,
    clock: &Clock,
    body_limit: Option<usize>,
) -> Result<(Response, Vec<u8>), MailError> {
    let (stream, tls) = open(at, clock).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| MailError::new("response", hyper_kind(e)))?;
    let _conn = Abort(tokio::spawn(async move {
        // Its errors reach the request's future, which reports them.
        let _ = conn.await;
    }));
    let answer = clock
        .step("response", async {
            sender.send_request(request).await.map_err(hyper_kind)
        })
        .await?;
    let status = answer.status();
    let status_line = format!(
        "{:?} {} {}",
        answer.version(),
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
    .trim_end()
    .to_string();
    let mut body = Vec::new();
    if let Some(limit) = body_limit {
        use http_body_util::BodyExt as _;
        let limited = http_body_util::Limited::new(answer.into_body(), limit);
        body = clock
            .step("body", async {
                limited
                    .collect()
                    .await
                    .map(|b| b.to_bytes().to_vec())
                    .map_err(|e| match e.downcast::<hyper::Error>() {
                        Ok(h) => hyper_kind(*h),
                        Err(e) => ErrorKind::Protocol(e.to_string()),
                    })
            })
            .await?;
    }
    let response = Response {
        status: status.as_u16(),
        status_line,
        tls,
    };
    Ok((response, body))
}

fn authority(at: &Endpoint<'_>) -> String {
    if at.host.contains(':') {
        format!("[{}]:{}", at.host, at.port)
    } else {
        format!("{}:{}", at.host, at.port)
    }
}

fn build(
    method: &str,
    at: &Endpoint<'_>,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Result<Request<Full<Bytes>>, MailError> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", authority(at))
        .header("user-agent", "mailfleet")
        .header("connection", "close");
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    b.body(Full::new(Bytes::from(body)))
        .map_err(|e| MailError::protocol("request", format!("{path}: {e}")))
}

/// `GET path`, timed to the status line.
pub async fn get(at: &Endpoint<'_>, path: &str, clock: &Clock) -> Result<Response, MailError> {
    let request = build("GET", at, path, None, Vec::new())?;
    Ok(exchange(at, request, clock, None).await?.0)
}

/// `GET path` with the answer's body (at most `limit` bytes).
pub async fn get_body(
    at: &Endpoint<'_>,
    path: &str,
    limit: usize,
    clock: &Clock,
) -> Result<(Response, Vec<u8>), MailError> {
    let request = build("GET", at, path, None, Vec::new())?;
    exchange(at, request, clock, Some(limit)).await
}

/// `POST` of a JSON body to a URL (`http://` or `https://`; TLS verified against the system's
/// CAs); the answer's status.
pub async fn post_json(url: &str, json: Vec<u8>, clock: &Clock) -> Result<Response, MailError> {
    let uri: Uri = url
        .parse()
        .map_err(|e| MailError::protocol("request", format!("{url}: {e}")))?;
    let implicit = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            return Err(MailError::protocol(
                "request",
                format!("{url}: only http:// and https:// URLs are supported"),
            ));
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| MailError::protocol("request", format!("{url}: no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if implicit { 443 } else { 80 });
    let tls = if implicit {
        Some(
            Tls::new(&mailfleet_core::fleet::TlsSettings::default(), host)
                .map_err(|e| MailError::protocol("tls", e.to_string()))?,
        )
    } else {
        None
    };
    let at = Endpoint {
        host,
        port,
        tls: tls.as_ref(),
        implicit,
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = build("POST", &at, path, Some("application/json"), json)?;
    Ok(exchange(&at, request, clock, None).await?.0)
}

//! `spendql serve --otlp ADDR`: an OTLP/HTTP trace receiver (`POST /v1/traces`, protobuf or
//! JSON, optionally gzip), so SDKs and Collectors send GenAI spans straight to SpendQL.
//!
//! Shaped like the wire server: `run(listener, engine, options, shutdown)`, one task per
//! connection, limits explicit. A request is answered 200 only after its GenAI spans are in
//! the usage write-ahead log and fsynced (the same path as `INSERT`), so an acknowledged span
//! survives a crash; a request is stored whole or not at all. Malformed payloads get 400 with
//! the reason (the OTLP spec says clients must not retry those); when `max_in_flight`
//! requests are already being stored the answer is 503 with `Retry-After`, which OTLP
//! exporters retry with backoff, so overload delays data instead of dropping it.

use std::convert::Infallible;
use std::future::Future;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ingest::UsageRows;
use crate::ingest::providers::{self, otel::Mapping};

/// Limits and settings of the receiver.
#[derive(Debug, Clone)]
pub struct OtlpOptions {
    /// Largest request body accepted, compressed (413 above it).
    pub max_body_bytes: usize,
    /// Largest body after gzip decompression (413 above it).
    pub max_decoded_bytes: usize,
    /// Requests decoded and stored at once; more get 503 and retry.
    pub max_in_flight: usize,
    /// Which span and resource attributes fill the attribution columns.
    pub mapping: Mapping,
}

impl Default for OtlpOptions {
    fn default() -> Self {
        OtlpOptions {
            max_body_bytes: 16 << 20,
            max_decoded_bytes: 64 << 20,
            max_in_flight: 16,
            mapping: Mapping::default(),
        }
    }
}

/// How long shutdown lets requests being stored finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

struct Shared {
    engine: Engine,
    options: OtlpOptions,
    in_flight: Arc<Semaphore>,
}

/// Serve OTLP/HTTP until `shutdown` completes; then stop accepting and let open requests
/// finish (up to five seconds).
pub async fn run(
    listener: TcpListener,
    engine: Engine,
    options: OtlpOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let shared = Arc::new(Shared {
        engine,
        in_flight: Arc::new(Semaphore::new(options.max_in_flight.max(1))),
        options,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!("otlp: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let shared = Arc::clone(&shared);
        let mut stop = stop_rx.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(handle(&shared, request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!("otlp: connection from {peer}: {e}");
                    }
                }
                () = stopped(&mut stop) => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    let _ = stop_tx.send(true);
    if tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!("otlp: requests still open after the shutdown grace period; closing them");
        connections.abort_all();
    }
    Ok(())
}

/// Resolves once shutdown is signalled (or the receiver is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// The wire format of a request, which is also the format of its answer.
#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Protobuf,
    Json,
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.uri().path() != "/v1/traces" {
        return plain(StatusCode::NOT_FOUND, "only /v1/traces is served here");
    }
    if request.method() != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "POST OTLP trace exports");
    }
    let content_type = header(&request, CONTENT_TYPE);
    let encoding = match content_type.split(';').next().map(str::trim) {
        Some("application/x-protobuf") => Encoding::Protobuf,
        Some("application/json") => Encoding::Json,
        _ => {
            return plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/x-protobuf or application/json",
            );
        }
    };
    let gzip = match header(&request, CONTENT_ENCODING).as_str() {
        "" | "identity" => false,
        "gzip" => true,
        other => {
            return plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!("Content-Encoding {other:?} is not supported (gzip is)"),
            );
        }
    };
    let Ok(permit) = Arc::clone(&shared.in_flight).try_acquire_owned() else {
        let mut response = plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy storing other exports; retry",
        );
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    let limit = shared.options.max_body_bytes;
    let body = match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body is unreadable or larger than {limit} bytes: {e}"),
            );
        }
    };
    let engine = shared.engine.clone();
    let options = shared.options.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        store(&engine, &body, gzip, encoding, &options)
    })
    .await;
    match stored {
        Ok(Ok(())) => success(encoding),
        Ok(Err(Rejection::Client(status, reason))) => plain(status, &reason),
        Ok(Err(Rejection::Storage(e))) => {
            tracing::error!("otlp: storing spans failed: {e}");
            let mut response = plain(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("the spans could not be stored: {e}"),
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("5"));
            response
        }
        Err(e) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the request task failed: {e}"),
        ),
    }
}

enum Rejection {
    /// The request is at fault; do not retry it.
    Client(StatusCode, String),
    /// Storage failed; the client may retry.
    Storage(Error),
}

fn bad_request(reason: impl Into<String>) -> Rejection {
    Rejection::Client(StatusCode::BAD_REQUEST, reason.into())
}

/// Decode, convert and durably store one export. Blocking.
fn store(
    engine: &Engine,
    body: &[u8],
    gzip: bool,
    encoding: Encoding,
    options: &OtlpOptions,
) -> std::result::Result<(), Rejection> {
    let inflated;
    let body = if gzip {
        let mut out = Vec::new();
        let limit = options.max_decoded_bytes as u64;
        flate2::read::MultiGzDecoder::new(body)
            .take(limit + 1)
            .read_to_end(&mut out)
            .map_err(|e| bad_request(format!("invalid gzip body: {e}")))?;
        if out.len() as u64 > limit {
            return Err(Rejection::Client(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {limit} bytes decompressed"),
            ));
        }
        inflated = out;
        &inflated[..]
    } else {
        body
    };
    let mut converted = Vec::new();
    let json_text;
    let json = match encoding {
        Encoding::Json => body,
        Encoding::Protobuf => {
            let request = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(body)
                .map_err(|e| bad_request(format!("invalid OTLP protobuf: {e}")))?;
            // The proto types serialise to OTLP/JSON, which the otel-genai adapter reads.
            json_text = serde_json::to_vec(&request)
                .map_err(|e| bad_request(format!("unreadable OTLP export: {e}")))?;
            &json_text[..]
        }
    };
    providers::otel::usage_json(json, &options.mapping, &mut converted)
        .map_err(|e| bad_request(format!("{}: {}", e.column, e.reason)))?;
    if converted.is_empty() {
        return Ok(());
    }
    let now = chrono::Utc::now().timestamp_micros();
    let mut rows = UsageRows::new(now, "otlp".into());
    let width = rows.column_names().len();
    for row in converted {
        row.and_then(|row| rows.push(&row.fields(width), String::new))
            .map_err(|e| bad_request(format!("{}: {}", e.column, e.reason)))?;
    }
    let batch = rows
        .finish()
        .map_err(|e| Rejection::Storage(Error::Arrow(e)))?;
    engine.insert_usage(&batch).map_err(Rejection::Storage)?;
    Ok(())
}

fn header(request: &Request<Incoming>, name: hyper::header::HeaderName) -> String {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// OTLP's success answer: an empty `ExportTraceServiceResponse` in the request's encoding.
fn success(encoding: Encoding) -> Response<Full<Bytes>> {
    let (body, content_type) = match encoding {
        Encoding::Protobuf => (
            Bytes::from(
                opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::default()
                    .encode_to_vec(),
            ),
            "application/x-protobuf",
        ),
        Encoding::Json => (Bytes::from_static(b"{}"), "application/json"),
    };
    let mut response = Response::new(Full::new(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn plain(status: StatusCode, reason: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{reason}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

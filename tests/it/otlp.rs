//! The OTLP/HTTP receiver as an application reaches it: spans sent by the real OpenTelemetry
//! SDK and its OTLP exporter (protobuf and JSON), read back over SQL, durable across kill -9.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span, SpanKind, Tracer, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

use crate::common::Server;

/// Send spans through the SDK's OTLP/HTTP exporter and wait until they are acknowledged.
fn export(endpoint: SocketAddr, protocol: Protocol, spans: &[(&str, Vec<KeyValue>)]) {
    // The SDK's reqwest client shares SpendQL's reqwest build, which brings no TLS crypto
    // provider of its own (SpendQL uses ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_endpoint(format!("http://{endpoint}/v1/traces"))
        .build()
        .expect("OTLP exporter");
    let resource = Resource::builder()
        .with_service_name("search-api")
        .with_attributes([
            KeyValue::new("team", "search"),
            KeyValue::new("deployment.environment.name", "prod"),
        ])
        .build();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("spendql-test");
    for (name, attributes) in spans {
        let mut span = tracer
            .span_builder(name.to_string())
            .with_kind(SpanKind::Client)
            .with_attributes(attributes.clone())
            .start(&tracer);
        span.end();
    }
    provider.force_flush().expect("spans acknowledged");
    provider.shutdown().expect("exporter shut down");
}

fn chat(provider: &str, model: &str, input: i64, cache_read: i64, output: i64) -> Vec<KeyValue> {
    vec![
        KeyValue::new("gen_ai.operation.name", "chat"),
        KeyValue::new("gen_ai.provider.name", provider.to_string()),
        KeyValue::new("gen_ai.request.model", model.to_string()),
        KeyValue::new("gen_ai.usage.input_tokens", input),
        KeyValue::new("gen_ai.usage.cache_read.input_tokens", cache_read),
        KeyValue::new("gen_ai.usage.output_tokens", output),
        KeyValue::new("feature", "answers"),
        KeyValue::new("customer", "acme"),
    ]
}

/// POST a body to the receiver over a raw socket; (status, body).
fn post(endpoint: SocketAddr, content_type: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(endpoint).expect("connect");
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: {endpoint}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(body).expect("write body");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn sdk_spans_are_usage_rows_at_once_and_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--otlp", "127.0.0.1:0"]);
    let otlp = server.otlp.expect("the OTLP address is printed");
    export(
        otlp,
        Protocol::HttpBinary,
        &[
            (
                "chat gpt-4o-mini",
                chat("openai", "gpt-4o-mini", 1200, 200, 300),
            ),
            (
                "chat claude",
                chat("anthropic", "claude-sonnet-4-5-20250929", 5000, 4000, 80),
            ),
            (
                "GET /health",
                vec![KeyValue::new("http.request.method", "GET")],
            ),
        ],
    );
    export(
        otlp,
        Protocol::HttpJson,
        &[(
            "chat gemini",
            chat("gcp.gemini", "gemini-2.5-flash", 100, 0, 10),
        )],
    );
    let query = "SELECT provider, model, input_tokens, cached_input_tokens, output_tokens, \
                 requests, team, environment, feature, customer, source \
                 FROM usage ORDER BY provider";
    let expected = "anthropic|claude-sonnet-4-5-20250929|1000|4000|80|1|search|prod|answers|acme|otlp\n\
                    google|gemini-2.5-flash|100|0|10|1|search|prod|answers|acme|otlp\n\
                    openai|gpt-4o-mini|1000|200|300|1|search|prod|answers|acme|otlp\n";
    // Queryable as soon as the export was acknowledged.
    assert_eq!(server.psql("tester", &format!("{query};\n")), expected);
    // Acknowledged means fsynced: a SIGKILL loses nothing.
    server.kill();
    let server = Server::start(dir.path(), &[]);
    assert_eq!(server.psql("tester", &format!("{query};\n")), expected);
    // And it is costed like any other usage.
    assert_eq!(
        server.psql(
            "tester",
            "SELECT count(*) FROM spend WHERE priced AND source = 'otlp';\n"
        ),
        "3\n"
    );
}

#[test]
fn malformed_exports_get_400_with_a_reason_and_store_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--otlp", "127.0.0.1:0"]);
    let otlp = server.otlp.expect("the OTLP address is printed");
    let (status, body) = post(otlp, "application/x-protobuf", b"\xff\xff\xff garbage");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid OTLP protobuf"), "{body}");
    let (status, body) = post(otlp, "application/json", b"{\"resourceSpans\": [");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid OTLP/JSON"), "{body}");
    // One bad span rejects its whole export: nothing of it is stored.
    let export = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[
        {"traceId":"01","spanId":"01","startTimeUnixNano":"1790812800000000000","attributes":[
          {"key":"gen_ai.provider.name","value":{"stringValue":"openai"}},
          {"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o"}},
          {"key":"gen_ai.usage.input_tokens","value":{"intValue":"10"}},
          {"key":"gen_ai.usage.output_tokens","value":{"intValue":"5"}}]},
        {"traceId":"01","spanId":"02","startTimeUnixNano":"1790812800000000000","attributes":[
          {"key":"gen_ai.provider.name","value":{"stringValue":"openai"}},
          {"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o"}},
          {"key":"gen_ai.usage.input_tokens","value":{"intValue":"-3"}}]}]}]}]}"#;
    let (status, body) = post(otlp, "application/json", export.as_bytes());
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("spans[1].gen_ai.usage.input_tokens: -3 is negative"),
        "{body}"
    );
    let (status, _) = post(otlp, "text/plain", b"hello");
    assert_eq!(status, 415);
    assert_eq!(
        server.psql("tester", "SELECT count(*) FROM usage;\n"),
        "0\n"
    );
    // The good span alone is accepted.
    let good = export.replace("\"intValue\":\"-3\"", "\"intValue\":\"3\"");
    let (status, body) = post(otlp, "application/json", good.as_bytes());
    assert_eq!((status, body.as_str()), (200, "{}"));
    assert_eq!(
        server.psql("tester", "SELECT count(*) FROM usage;\n"),
        "2\n"
    );
}

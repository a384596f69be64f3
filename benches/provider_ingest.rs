//! Provider-export ingest speed and memory of the real binary.
//!
//! `cargo bench --bench provider_ingest` (BENCH_RECORDS, default 1,000,000) writes exports
//! in four provider formats whose per-request token counts come from the real Azure LLM
//! inference trace in `testdata/traces` (cycling through its rows), then measures
//! `spendql ingest --format F` from a fresh process at the full size and at a quarter of it:
//! records/s over the whole run (start-up and the closing cost summary included) and peak RSS
//! (GNU time), so that memory flat with file size shows as equal RSS at both sizes.
//!
//! * `otel-genai`: OTLP/JSON exports of 100 spans each, one per line (the Collector's file
//!   exporter);
//! * `gemini`: one `GenerateContentResponse` per line;
//! * `litellm`: SpendLogs rows as JSON lines;
//! * `openai-usage`: Usage API pages of 1,000 results (one minute bucket per API key).
//!
//! Then the OTLP/HTTP receiver (`spendql serve --otlp`): CLIENTS connections post exports of
//! 512 spans (the SDK batch size) back to back for BENCH_OTLP_SECONDS (default 20), as
//! protobuf and as JSON; every 200 means the spans were fsynced. Spans/s acknowledged, the
//! slowest request, and the rows counted afterwards over SQL.
//!
//! `BENCH_FORMATS=gemini,litellm` measures only those formats; `BENCH_OTLP_SECONDS=0` skips
//! the receiver. `BENCH_INPUTS=DIR` keeps the generated files and reuses them. Nothing here
//! asserts a timing.

mod common;

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const MODELS: &[(&str, &str)] = &[
    ("openai", "gpt-4o-2024-08-06"),
    ("openai", "gpt-4o-mini-2024-07-18"),
    ("anthropic", "claude-sonnet-4-5-20250929"),
    ("gcp.gemini", "gemini-2.5-flash"),
];
const TEAMS: &[&str] = &["search", "support", "ads", "growth", "platform"];
/// 2026-10-01T00:00:00Z.
const START_SECS: i64 = 1_790_812_800;

/// Per-request (input, output) token counts from the Azure trace.
fn trace_tokens() -> Vec<(u64, u64)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/traces/AzureLLMInferenceTrace_conv.csv");
    let text = std::fs::read_to_string(&path).expect("the Azure trace in testdata/traces");
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut cells = line.split(',').skip(1);
            Some((cells.next()?.parse().ok()?, cells.next()?.parse().ok()?))
        })
        .collect()
}

fn write_lines(path: &Path, records: usize, mut line: impl FnMut(usize, &mut String) -> usize) {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).expect("create input"));
    let mut text = String::new();
    let mut done = 0;
    while done < records {
        text.clear();
        done += line(done, &mut text);
        text.push('\n');
        out.write_all(text.as_bytes()).expect("write input");
    }
    out.flush().expect("flush input");
}

fn write_otel(path: &Path, records: usize, tokens: &[(u64, u64)]) {
    write_lines(path, records, |first, s| {
        otel_export(first, 100.min(records - first), tokens, s)
    });
}

/// One OTLP/JSON export of spans `first..first + n`.
fn otel_export(first: usize, n: usize, tokens: &[(u64, u64)], s: &mut String) -> usize {
    {
        let team = TEAMS[(first / 100) % TEAMS.len()];
        s.push_str(r#"{"resourceSpans":[{"resource":{"attributes":["#);
        let _ = write!(
            s,
            r#"{{"key":"service.name","value":{{"stringValue":"{team}-api"}}}},{{"key":"team","value":{{"stringValue":"{team}"}}}},{{"key":"deployment.environment.name","value":{{"stringValue":"prod"}}}}"#
        );
        s.push_str(r#"]},"scopeSpans":[{"scope":{"name":"opentelemetry.instrumentation.openai"},"spans":["#);
        for i in first..first + n {
            let (input, output) = tokens[i % tokens.len()];
            let (provider, model) = MODELS[i % MODELS.len()];
            let start = (START_SECS + i as i64 / 10) as i128 * 1_000_000_000;
            if i > first {
                s.push(',');
            }
            let _ = write!(
                s,
                r#"{{"traceId":"{i:032x}","spanId":"{i:016x}","name":"chat {model}","kind":3,"startTimeUnixNano":"{start}","endTimeUnixNano":"{}","status":{{"code":1}},"attributes":[{{"key":"gen_ai.operation.name","value":{{"stringValue":"chat"}}}},{{"key":"gen_ai.provider.name","value":{{"stringValue":"{provider}"}}}},{{"key":"gen_ai.request.model","value":{{"stringValue":"{model}"}}}},{{"key":"gen_ai.response.model","value":{{"stringValue":"{model}"}}}},{{"key":"gen_ai.usage.input_tokens","value":{{"intValue":"{input}"}}}},{{"key":"gen_ai.usage.output_tokens","value":{{"intValue":"{output}"}}}},{{"key":"feature","value":{{"stringValue":"chat"}}}},{{"key":"customer","value":{{"stringValue":"cust-{}"}}}}]}}"#,
                start + 900_000_000,
                i % 5000
            );
        }
        s.push_str("]}]}]}");
        n
    }
}

fn write_gemini(path: &Path, records: usize, tokens: &[(u64, u64)]) {
    write_lines(path, records, |i, s| {
        let (input, output) = tokens[i % tokens.len()];
        let ts = chrono::DateTime::from_timestamp(START_SECS + i as i64 / 10, 0)
            .expect("time")
            .format("%Y-%m-%dT%H:%M:%S%.6fZ");
        let _ = write!(
            s,
            r#"{{"candidates":[{{"content":{{"role":"model","parts":[{{"text":"ok"}}]}},"finishReason":"STOP","index":0}}],"usageMetadata":{{"promptTokenCount":{input},"candidatesTokenCount":{output},"totalTokenCount":{},"trafficType":"ON_DEMAND"}},"modelVersion":"gemini-2.5-flash","createTime":"{ts}","responseId":"resp-{i:012x}"}}"#,
            input + output
        );
        1
    });
}

fn write_litellm(path: &Path, records: usize, tokens: &[(u64, u64)]) {
    write_lines(path, records, |i, s| {
        let (input, output) = tokens[i % tokens.len()];
        let team = TEAMS[i % TEAMS.len()];
        let start = chrono::DateTime::from_timestamp(START_SECS + i as i64 / 10, 0).expect("time");
        let end = start + chrono::Duration::milliseconds(900);
        let _ = write!(
            s,
            r#"{{"request_id":"chatcmpl-{i:016x}","call_type":"acompletion","api_key":"{:064x}","spend":0.000{},"total_tokens":{},"prompt_tokens":{input},"completion_tokens":{output},"startTime":"{}","endTime":"{}","model":"gpt-4o-mini-2024-07-18","model_group":"gpt-4o-mini","custom_llm_provider":"openai","user":"user_{}","metadata":{{"user_api_key_team_alias":"{team}","usage_object":{{"prompt_tokens":{input},"completion_tokens":{output},"prompt_tokens_details":{{"cached_tokens":0}}}}}},"cache_hit":"False","request_tags":["feature:chat","customer:cust-{}"],"team_id":"{team}","end_user":"","status":"success"}}"#,
            i % 97,
            100 + i % 900,
            input + output,
            start.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            end.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            i % 400,
            i % 5000
        );
        1
    });
}

fn write_openai_pages(path: &Path, records: usize, tokens: &[(u64, u64)]) {
    write_lines(path, records, |first, s| {
        let n = 1000.min(records - first);
        let bucket = START_SECS + (first / 1000) as i64 * 60;
        let _ = write!(
            s,
            r#"{{"object":"page","data":[{{"object":"bucket","start_time":{bucket},"end_time":{},"results":["#,
            bucket + 60
        );
        for i in first..first + n {
            let (input, output) = tokens[i % tokens.len()];
            if i > first {
                s.push(',');
            }
            let _ = write!(
                s,
                r#"{{"object":"organization.usage.completions.result","input_tokens":{},"output_tokens":{},"input_cached_tokens":{},"input_audio_tokens":0,"output_audio_tokens":0,"num_model_requests":{},"project_id":"proj_{}","user_id":null,"api_key_id":"key_{:06}","model":"{}","batch":false}}"#,
                input * 10,
                output * 10,
                input * 3,
                10,
                i % 7,
                i - first,
                MODELS[i % 2].1
            );
        }
        s.push_str(r#"]}],"has_more":true,"next_page":"page_x"}"#);
        n
    });
}

type Writer = fn(&Path, usize, &[(u64, u64)]);

/// Post each of `bodies` once over one keep-alive connection, stopping at `until`;
/// (spans acknowledged, slowest request in ms). A 503 is retried after 50 ms.
fn post_loop(
    addr: std::net::SocketAddr,
    content_type: &str,
    bodies: &[Vec<u8>],
    spans_per_body: usize,
    until: Instant,
) -> (usize, f64) {
    use std::io::{BufRead, BufReader, Read};
    let stream = std::net::TcpStream::connect(addr).expect("connect to the receiver");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    let (mut spans, mut slowest, mut i) = (0, 0f64, 0);
    while i < bodies.len() && Instant::now() < until {
        let body = &bodies[i];
        i += 1;
        let started = Instant::now();
        let head = format!(
            "POST /v1/traces HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        writer.write_all(head.as_bytes()).expect("write");
        writer.write_all(body).expect("write");
        let mut status = String::new();
        reader.read_line(&mut status).expect("status line");
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("header");
            if line.trim().is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut answer = vec![0; length];
        reader.read_exact(&mut answer).expect("body");
        if status.contains(" 200 ") {
            spans += spans_per_body;
        } else {
            // 503 asks the client to retry later, as an exporter would.
            std::thread::sleep(std::time::Duration::from_millis(50));
            i -= 1;
        }
        slowest = slowest.max(started.elapsed().as_secs_f64() * 1000.0);
    }
    (spans, slowest)
}

fn otlp_bench(bin: &str, work: &Path, tokens: &[(u64, u64)]) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    const SPANS: usize = 512;
    /// Requests prepared (1,200 x 512 = 614,400 distinct spans); a run ends when they are
    /// all sent or the time is up.
    const BODIES: usize = 1200;
    let seconds: u64 = std::env::var("BENCH_OTLP_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let clients: usize = std::env::var("CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    println!();
    println!(
        "| OTLP/HTTP | clients | spans/request | spans acknowledged | spans/s | slowest request | rows in usage |"
    );
    println!("|---|---|---|---|---|---|---|");
    for encoding in ["protobuf", "json"] {
        let data = work.join(format!("data-otlp-{encoding}"));
        let mut child = Command::new(bin)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--otlp",
                "127.0.0.1:0",
                "--data",
            ])
            .arg(&data)
            .env("SPENDQL_LOG", "warn")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spendql serve");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
        let (mut otlp, mut pg) = (None, None);
        while otlp.is_none() || pg.is_none() {
            let line = lines.next().expect("server output").expect("line");
            let addr = |prefix: &str| {
                line.strip_prefix(prefix)
                    .and_then(|rest| rest.split([' ', ';']).next())
                    .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
            };
            otlp = otlp.or_else(|| addr("spendql receiving OTLP/HTTP traces on "));
            pg = pg.or_else(|| {
                line.split(" on ")
                    .nth(1)
                    .and_then(|r| r.split(';').next())
                    .and_then(|a| a.parse().ok())
            });
        }
        std::thread::spawn(move || for _ in lines {});
        let (otlp, pg): (std::net::SocketAddr, std::net::SocketAddr) =
            (otlp.expect("otlp"), pg.expect("pg"));
        // Distinct spans in every request (none is a duplicate), made before the clock starts.
        let per_client = BODIES / clients;
        let content_type = if encoding == "json" {
            "application/json"
        } else {
            "application/x-protobuf"
        };
        let bodies: Vec<Vec<Vec<u8>>> = (0..clients)
            .map(|c| {
                (0..per_client)
                    .map(|b| {
                        let mut json = String::new();
                        otel_export((c * per_client + b) * SPANS, SPANS, tokens, &mut json);
                        match encoding {
                            "json" => json.into_bytes(),
                            _ => serde_json::from_str::<ExportTraceServiceRequest>(&json)
                                .expect("OTLP/JSON to proto")
                                .encode_to_vec(),
                        }
                    })
                    .collect()
            })
            .collect();
        let started = Instant::now();
        let until = started + std::time::Duration::from_secs(seconds);
        let results: Vec<(usize, f64)> = std::thread::scope(|scope| {
            let handles: Vec<_> = bodies
                .iter()
                .map(|mine| scope.spawn(move || post_loop(otlp, content_type, mine, SPANS, until)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("client"))
                .collect()
        });
        let elapsed = started.elapsed().as_secs_f64();
        let spans: usize = results.iter().map(|r| r.0).sum();
        let slowest = results.iter().map(|r| r.1).fold(0.0, f64::max);
        let rows = Command::new("psql")
            .args([
                "-h",
                &pg.ip().to_string(),
                "-p",
                &pg.port().to_string(),
                "-At",
                "-c",
            ])
            .arg("SELECT count(*) FROM usage")
            .arg("spendql")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|_| "psql missing".into());
        println!(
            "| {encoding} | {clients} | {SPANS} | {spans} | {:.0} | {slowest:.0} ms | {rows} |",
            spans as f64 / elapsed
        );
        let _ = Command::new("kill").arg(child.id().to_string()).status();
        let _ = child.wait();
    }
}

fn main() {
    let records: usize = std::env::var("BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let bin = env!("CARGO_BIN_EXE_spendql");
    let work = tempfile::tempdir().expect("tempdir");
    let inputs =
        std::env::var_os("BENCH_INPUTS").map_or_else(|| work.path().to_path_buf(), PathBuf::from);
    std::fs::create_dir_all(&inputs).expect("inputs directory");
    let tokens = trace_tokens();
    let formats: [(&str, &str, Writer); 4] = [
        ("otel-genai", "jsonl", write_otel),
        ("gemini", "jsonl", write_gemini),
        ("litellm", "jsonl", write_litellm),
        ("openai-usage", "jsonl", write_openai_pages),
    ];
    println!("| format | records | file | time | records/s | peak RSS |");
    println!("|---|---|---|---|---|---|");
    let only = std::env::var("BENCH_FORMATS").ok();
    let wanted = |format: &str| {
        only.as_deref()
            .is_none_or(|list| list.split(',').any(|f| f.trim() == format))
    };
    for (format, ext, write) in formats.into_iter().filter(|f| wanted(f.0)) {
        for size in [records / 4, records] {
            let file = inputs.join(format!("{format}-{size}.{ext}"));
            if !file.exists() {
                write(&file, size, &tokens);
            }
            let mib = std::fs::metadata(&file).map_or(0, |m| m.len()) >> 20;
            let data = work.path().join(format!("data-{format}-{size}"));
            let (secs, rss, _) = common::timed(
                Command::new(bin)
                    .args(["ingest", "--format", format, "--data"])
                    .arg(&data)
                    .arg(&file),
            );
            println!(
                "| {format} | {size} | {mib} MiB | {secs:.2} s | {:.0} | {rss:.0} MiB |",
                size as f64 / secs
            );
            let _ = std::fs::remove_dir_all(&data);
        }
    }
    if std::env::var("BENCH_OTLP_SECONDS").as_deref() != Ok("0") {
        otlp_bench(bin, work.path(), &tokens);
    }
}

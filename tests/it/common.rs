//! Starting the real binary, as a user would.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::service::service_fn;
use tokio::sync::mpsc as async_mpsc;

/// The `spendql` binary built for these tests.
pub fn spendql() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spendql"));
    cmd.env("SPENDQL_LOG", "warn").env_remove("SPENDQL_DATA");
    cmd
}

/// Run `spendql sql` on `dir` and return its output.
pub fn sql(dir: &Path, query: &str, format: &str) -> Output {
    spendql()
        .args(["sql", "--format", format, "--data"])
        .arg(dir)
        .arg(query)
        .output()
        .expect("run spendql sql")
}

/// Run `spendql sql` and return stdout, failing the test if it fails.
pub fn sql_ok(dir: &Path, query: &str) -> String {
    let out = sql(dir, query, "csv");
    assert!(
        out.status.success(),
        "spendql sql {query:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8 output")
}

/// Run `spendql ingest --format FORMAT` of `file` into `dir`, failing the test if it fails.
pub fn ingest_ok(dir: &Path, format: &str, file: &Path) {
    let out = spendql()
        .args(["ingest", "--format", format, "--data"])
        .arg(dir)
        .arg(file)
        .output()
        .expect("run spendql ingest");
    assert!(
        out.status.success(),
        "spendql ingest {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running `spendql serve`.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    /// The OTLP/HTTP receiver's address, when started with `--otlp`.
    pub otlp: Option<SocketAddr>,
    /// Keeps the stderr reader alive, so the server never blocks or fails writing to it.
    _stderr: mpsc::Receiver<String>,
}

impl Server {
    /// Start `spendql serve` on a free loopback port with `extra` arguments.
    pub fn start(dir: &Path, extra: &[&str]) -> Server {
        let mut child = spendql()
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn spendql serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        let mut otlp = None;
        let addr = loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("spendql receiving OTLP/HTTP traces on ")
                    {
                        let addr = rest.split(' ').next().unwrap_or_default();
                        otlp = Some(addr.parse().expect("OTLP address"));
                    }
                    if let Some(rest) = line.split(" on ").nth(1)
                        && line.starts_with("spendql serving")
                    {
                        let addr = rest.split(';').next().unwrap_or_default().trim();
                        break addr.parse().expect("server address");
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("server did not start; it printed: {seen:#?}");
                }
            }
        };
        Server {
            child,
            addr,
            otlp,
            _stderr: rx,
        }
    }

    /// Connect with tokio-postgres as any user (loopback needs no password).
    pub async fn connect(&self) -> tokio_postgres::Client {
        self.connect_as("tester", "")
            .await
            .expect("connect to spendql")
    }

    /// Connect with tokio-postgres as `user` with `password` (SCRAM once users exist).
    pub async fn connect_as(
        &self,
        user: &str,
        password: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(self.addr.ip().to_string())
            .port(self.addr.port())
            .user(user)
            .password(password)
            .dbname("spendql")
            .connect_timeout(Duration::from_secs(10));
        let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Run psql against the server as `user` with unaligned, tuples-only output, feeding it
    /// `script` on stdin; stops at the first error. Returns stdout, after asserting success.
    pub fn psql(&self, user: &str, script: &str) -> String {
        let out = self.psql_output(user, script);
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Like [`Server::psql`], but returns psql's exit status and output, for scripts that
    /// are meant to fail.
    pub fn psql_output(&self, user: &str, script: &str) -> Output {
        self.psql_env(user, &[], script)
    }

    /// Like [`Server::psql_output`] with libpq environment settings such as `PGPASSWORD`
    /// or `PGSSLMODE`.
    pub fn psql_env(&self, user: &str, env: &[(&str, &str)], script: &str) -> Output {
        use std::io::Write;
        Command::new("psql")
            .args([
                "-h",
                &self.addr.ip().to_string(),
                "-p",
                &self.addr.port().to_string(),
            ])
            .args(["-U", user, "-At", "-v", "ON_ERROR_STOP=1", "spendql"])
            .env("PGCONNECT_TIMEOUT", "10")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(script.as_bytes())?;
                child.wait_with_output()
            })
            .expect("psql is installed (.ci/run installs postgresql-client)")
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.child.wait().expect("wait for server");
        assert!(status.success(), "server exited with {status}");
    }
}

impl Drop for Server {
    /// A failing test must not leave a server running.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A webhook receiver: answers every POST with `status` and reports its body.
pub struct Receiver {
    addr: SocketAddr,
    pub posts: async_mpsc::UnboundedReceiver<(String, serde_json::Value)>,
}

impl Receiver {
    pub async fn start(status: u16) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Receiver::serve(listener, status)
    }

    pub fn serve(listener: tokio::net::TcpListener, status: u16) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let (tx, posts) = async_mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                            let tx = tx.clone();
                            async move {
                                let path = request.uri().path().to_string();
                                let body = request.into_body().collect().await?.to_bytes();
                                let json = serde_json::from_slice(&body).unwrap_or_default();
                                let _ = tx.send((path, json));
                                let mut response = hyper::Response::new(http_body_util::Full::new(
                                    bytes::Bytes::new(),
                                ));
                                *response.status_mut() =
                                    hyper::StatusCode::from_u16(status).unwrap();
                                Ok::<_, hyper::Error>(response)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { addr, posts }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn next(&mut self) -> (String, serde_json::Value) {
        tokio::time::timeout(Duration::from_secs(30), self.posts.recv())
            .await
            .expect("a webhook POST within 30 s")
            .expect("receiver running")
    }
}

//! The `spendql` command line: serve, sql, ingest, pricing, demo, user.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde::Deserialize;

use spendql::auth::Role;
use spendql::auth::users::{self, Users};
use spendql::background::Background;
use spendql::governance::{Monitor, MonitorOptions};
use spendql::ingest::{self, Format, IngestOptions};
use spendql::output::{self, OutputFormat};
use spendql::{Engine, EngineConfig, Error, Result};

/// mimalloc, as datafusion-cli uses: ingest and queries allocate many small short-lived
/// values (JSON fields, strings, hash entries), where it is much faster than glibc malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turn transparent huge pages off for this process. mimalloc asks for them on its arenas,
/// and the kernel then zeroes 2 MiB on a fault wherever it purged and reuses memory: on the
/// 10M-row dashboard 10% of CPU samples were `clear_page_erms`, and peak RSS fell from
/// 937–960 MiB to 662–674 MiB without them (ingest 14.4–14.9 s → 13.6 s). Best effort.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and changes a flag of this
        // process's memory map, which the kernel checks at each page fault.
        let result = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if result != 0 {
            let error = std::io::Error::last_os_error();
            // Not eprintln!: it panics when stderr is gone.
            let _ = writeln!(
                std::io::stderr(),
                "spendql: could not turn transparent huge pages off: {error}"
            );
        }
    }
}

/// AI spend management in SQL: an analytics engine that speaks the PostgreSQL protocol.
#[derive(Debug, Parser)]
#[command(name = "spendql", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the data lives (shared by every command).
#[derive(Debug, clap::Args)]
struct DataArgs {
    /// Data directory [env: SPENDQL_DATA] [default: ./spendql-data]
    #[arg(long, env = "SPENDQL_DATA")]
    data: Option<PathBuf>,
    /// Memory users' queries may use before spilling to disk, e.g. 4GiB; the server's own
    /// work (budgets, alerts, scheduled reports) has a quarter of it more [default: 2GiB]
    #[arg(long)]
    memory_limit: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the PostgreSQL wire protocol (psql, Metabase, Grafana, drivers).
    Serve {
        #[command(flatten)]
        data: DataArgs,
        /// Address to listen on [default: 127.0.0.1:5433]
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Configuration file (TOML); command-line flags win over it
        #[arg(long)]
        config: Option<PathBuf>,
        /// Write the demo data set first if the data directory has no usage yet
        #[arg(long)]
        demo: bool,
        /// Most concurrent connections
        #[arg(long, default_value_t = 100)]
        max_connections: usize,
        /// Also receive OpenTelemetry traces over OTLP/HTTP here (POST /v1/traces), e.g.
        /// 127.0.0.1:4318; GenAI spans become usage rows
        #[arg(long, value_name = "ADDR")]
        otlp: Option<SocketAddr>,
        /// --otlp: which attributes fill a column, e.g. `--map team=app.team,team`
        #[arg(long = "map", value_name = "COLUMN=ATTRIBUTES")]
        maps: Vec<String>,
        /// TLS certificate chain (PEM); needs --tls-key
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM); needs --tls-cert
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Refuse clients that do not use TLS (SQLSTATE 28000)
        #[arg(long)]
        require_tls: bool,
    },
    /// Manage the users that may connect (SCRAM-SHA-256; once one exists, every client
    /// must log in).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Run one SQL statement and print the result.
    Sql {
        #[command(flatten)]
        data: DataArgs,
        /// Output format
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
        /// The SQL to run
        query: String,
    },
    /// Load usage records from files (streaming; each file is stored whole or not at all).
    Ingest {
        #[command(flatten)]
        data: DataArgs,
        /// Input format
        #[arg(long, value_enum)]
        format: Format,
        /// Store the good records of a file with bad ones; the bad ones, with reasons, go to
        /// FILE.rejects
        #[arg(long)]
        skip_bad: bool,
        /// otel-genai: which attributes fill a column, e.g. `--map team=app.team,team`
        /// (columns: team, feature, customer, environment, user_id, project, api_key_id)
        #[arg(long = "map", value_name = "COLUMN=ATTRIBUTES")]
        maps: Vec<String>,
        /// Files to load (.gz files are decompressed, except Parquet)
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Manage the price catalog.
    Pricing {
        #[command(subcommand)]
        command: PricingCommand,
    },
    /// Run a report (built in: monthly_leadership, chargeback, top_customers, anomalies,
    /// policy_violations; or a path to a .sql report file) for a month.
    Report {
        #[command(flatten)]
        data: DataArgs,
        /// Report name, or a .sql file
        name: String,
        /// The month, e.g. 2026-10 [default: the last complete month]
        #[arg(long)]
        period: Option<String>,
        /// Output format
        #[arg(long, value_enum)]
        format: spendql::report::ReportFormat,
        /// Write here (atomically) instead of to stdout
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Write a realistic demo data set (180 days of a fictional company) into a new data directory.
    Demo {
        #[command(flatten)]
        data: DataArgs,
        /// Random seed (the same seed gives the same data)
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user, or change an existing user's role and password. The password is read
    /// from a prompt (or one line of stdin with --password-stdin); only its SCRAM verifier
    /// is stored.
    Add {
        #[command(flatten)]
        data: DataArgs,
        /// User name
        name: String,
        /// admin, analyst (read only), ingest (INSERT/COPY into usage) or team:TEAM (reads
        /// only that team's usage)
        #[arg(long)]
        role: Role,
        /// Read the password from the first line of stdin instead of a prompt
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a user.
    Remove {
        #[command(flatten)]
        data: DataArgs,
        /// User name
        name: String,
    },
    /// List users and their roles.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Debug, Subcommand)]
enum PricingCommand {
    /// Merge prices from a genai-prices, LiteLLM or CSV file into `pricing`: rows are
    /// upserted by provider, model, tier, region, long-context threshold, time window and
    /// effective_from; history is never deleted. Prints what changed.
    Import {
        #[command(flatten)]
        data: DataArgs,
        /// Input format
        #[arg(long, value_enum)]
        format: spendql::pricing::ImportFormat,
        /// The file to import
        file: PathBuf,
    },
}

/// `spendql.toml`. Every key is optional; flags win.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    listen: Option<SocketAddr>,
    data: Option<PathBuf>,
    memory_limit: Option<String>,
    otlp: Option<SocketAddr>,
    tls: Option<TlsConfig>,
    alerts: Option<AlertsConfig>,
    /// `[[reports]]`: reports the server runs on a schedule.
    #[serde(default)]
    reports: Vec<spendql::report::schedule::ReportConfig>,
}

/// `[alerts]` of `spendql.toml`: budget evaluation and webhook delivery.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsConfig {
    /// Evaluate budgets at least this often (default 10s), besides after every commit.
    interval: Option<String>,
    /// Delivery attempts after the first (default 4).
    retries: Option<u32>,
    /// Wait before the first retry, doubling each time (default 1s).
    retry_backoff: Option<String>,
    /// Let `budget_check` answer from an evaluation this old while usage keeps arriving
    /// (default: always exact).
    budget_check_staleness: Option<String>,
}

impl AlertsConfig {
    fn options(&self) -> Result<MonitorOptions> {
        let mut options = MonitorOptions::default();
        if let Some(interval) = &self.interval {
            options.interval = parse_positive_duration(interval, "alerts.interval")?;
        }
        if let Some(retries) = self.retries {
            options.retry.retries = retries;
        }
        if let Some(backoff) = &self.retry_backoff {
            options.retry.backoff = parse_positive_duration(backoff, "alerts.retry_backoff")?;
        }
        if let Some(staleness) = &self.budget_check_staleness {
            options.budget_check_staleness =
                parse_duration(staleness, "alerts.budget_check_staleness")?;
        }
        Ok(options)
    }
}

/// `250ms`, `10s`, `5m`, `1h`.
fn parse_duration(text: &str, key: &str) -> Result<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| Error::Invalid(format!("{key}: '{text}' is not a duration like 10s")))?;
    let too_long = || Error::Invalid(format!("{key}: '{text}' is too long"));
    let duration = match unit.trim() {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.checked_mul(60).ok_or_else(too_long)?),
        "h" => Duration::from_secs(number.checked_mul(3600).ok_or_else(too_long)?),
        _ => {
            return Err(Error::Invalid(format!(
                "{key}: '{text}' needs a unit: ms, s, m or h"
            )));
        }
    };
    Ok(duration)
}

/// [`parse_duration`] for settings where zero makes no sense.
fn parse_positive_duration(text: &str, key: &str) -> Result<Duration> {
    let duration = parse_duration(text, key)?;
    if duration.is_zero() {
        return Err(Error::Invalid(format!("{key} must be more than zero")));
    }
    Ok(duration)
}

/// After a command stored usage: evaluate budgets, store due alerts, deliver them.
async fn check_budgets(engine: &Engine) -> Result<()> {
    if engine.usage_commit_count() == 0 {
        return Ok(());
    }
    let monitor = Monitor::new(engine.clone(), MonitorOptions::default().retry)?;
    for alert in monitor.check_and_deliver().await? {
        eprintln!("alert: {}", alert.message);
    }
    Ok(())
}

/// `[tls]` of `spendql.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsConfig {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    #[serde(default)]
    require: bool,
}

fn load_config(path: Option<&Path>) -> Result<ConfigFile> {
    let Some(path) = path else {
        return Ok(ConfigFile::default());
    };
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    toml::from_str(&text).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
}

fn data_dir(args: &DataArgs, config: &ConfigFile) -> PathBuf {
    args.data
        .clone()
        .or_else(|| config.data.clone())
        .unwrap_or_else(|| PathBuf::from("./spendql-data"))
}

/// The OpenTelemetry attribute mapping with `--map` overrides applied.
fn otel_mapping(maps: &[String]) -> Result<ingest::providers::otel::Mapping> {
    let mut mapping = ingest::providers::otel::Mapping::default();
    for spec in maps {
        mapping
            .set(spec)
            .map_err(|e| Error::Invalid(format!("--map {spec}: {e}")))?;
    }
    Ok(mapping)
}

fn engine_config(args: &DataArgs, config: &ConfigFile, holder: String) -> Result<EngineConfig> {
    let mut engine = EngineConfig {
        holder,
        ..EngineConfig::default()
    };
    if let Some(limit) = args.memory_limit.as_ref().or(config.memory_limit.as_ref()) {
        engine.memory_limit = spendql::engine::parse_size(limit)?;
    }
    Ok(engine)
}

/// The runtime's blocking threads: Parquet reads of local files run there, one task per
/// column range. Tokio's default (512) let one scan start over a hundred threads, each
/// with its own allocator heap to fault in (the first query after start paid a second for
/// it, and the server's memory doubled); a few per core keep the disk as busy.
fn blocking_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * 4
}

fn main() -> ExitCode {
    disable_transparent_huge_pages();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SPENDQL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(blocking_threads())
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve {
            data,
            listen,
            config,
            demo,
            max_connections,
            otlp,
            maps,
            tls_cert,
            tls_key,
            require_tls,
        } => {
            let file = load_config(config.as_deref())?;
            let listen = listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5433)));
            let otlp = match otlp.or(file.otlp) {
                Some(addr) => Some((addr, otel_mapping(&maps)?)),
                None if maps.is_empty() => None,
                None => return Err(Error::Invalid("--map needs --otlp".into())),
            };
            let tls_file = file.tls.as_ref();
            let cert = tls_cert.or_else(|| tls_file.and_then(|t| t.cert.clone()));
            let key = tls_key.or_else(|| tls_file.and_then(|t| t.key.clone()));
            let tls = match (cert, key) {
                (Some(cert), Some(key)) => Some(spendql::server::Tls::from_pem_files(&cert, &key)?),
                (None, None) => None,
                _ => {
                    return Err(Error::Invalid(
                        "TLS needs both a certificate and a key".into(),
                    ));
                }
            };
            let require_tls = require_tls || tls_file.is_some_and(|t| t.require);
            if require_tls && tls.is_none() {
                return Err(Error::Invalid(
                    "--require-tls needs --tls-cert and --tls-key".into(),
                ));
            }
            let options = spendql::server::ServerOptions {
                max_connections,
                tls,
                require_tls,
                ..Default::default()
            };
            serve(&data, &file, listen, demo, options, otlp).await
        }
        Command::User { command } => user_command(command),
        Command::Sql {
            data,
            format,
            query,
        } => {
            let file = ConfigFile::default();
            let engine = Engine::open_with(
                data_dir(&data, &file),
                engine_config(&data, &file, "spendql sql".into())?,
            )
            .await?;
            report_open(&engine);
            let batches = engine.sql(&query).await?.collect().await?;
            {
                let stdout = std::io::stdout();
                let mut out = stdout.lock();
                output::write_batches(&mut out, &batches, format)?;
            }
            check_budgets(&engine).await?;
            engine.shutdown().await
        }
        Command::Ingest {
            data,
            format,
            skip_bad,
            maps,
            files,
        } => {
            let otel_mapping = otel_mapping(&maps)?;
            let file = ConfigFile::default();
            let engine = Engine::open_with(
                data_dir(&data, &file),
                engine_config(&data, &file, "spendql ingest".into())?,
            )
            .await?;
            report_open(&engine);
            let options = IngestOptions {
                format,
                skip_bad,
                progress: std::io::stderr().is_terminal(),
                otel_mapping,
            };
            let result = if format.is_costs() {
                ingest_cost_files(&engine, &files, &options).await
            } else {
                ingest_files(&engine, &files, &options).await
            };
            // Files committed before a failing one still count against budgets.
            let checked = check_budgets(&engine).await;
            engine.shutdown().await?;
            result.and(checked)
        }
        Command::Pricing {
            command: PricingCommand::Import { data, format, file },
        } => {
            let config = ConfigFile::default();
            let engine = Engine::open_with(
                data_dir(&data, &config),
                engine_config(&data, &config, "spendql pricing import".into())?,
            )
            .await?;
            let path = file.clone();
            let incoming =
                tokio::task::spawn_blocking(move || spendql::pricing::read_import(format, &path))
                    .await
                    .map_err(|e| Error::Invalid(format!("import task failed: {e}")))??;
            let rows = incoming.num_rows();
            let dating = format.dating(chrono::Utc::now().timestamp_micros());
            let report = engine.import_prices(incoming, dating).await?;
            for model in &report.new_models {
                println!("new model: {model}");
            }
            for change in &report.changed {
                println!("changed: {change}");
            }
            println!("{}: {}", file.display(), report.summary(rows));
            engine.shutdown().await
        }
        Command::Report {
            data,
            name,
            period,
            format,
            out,
        } => {
            let def = spendql::report::find(&name)?;
            let period = match period {
                Some(text) => spendql::report::Period::month(&text)?,
                None => spendql::report::Period::previous_month(chrono::Utc::now())?,
            };
            let file = ConfigFile::default();
            let engine = Engine::open_with(
                data_dir(&data, &file),
                engine_config(&data, &file, "spendql report".into())?,
            )
            .await?;
            report_open(&engine);
            let result = spendql::report::run(&engine.session(), &def, &period).await;
            engine.shutdown().await?;
            let bytes = spendql::report::render(&result?, format)?;
            match out {
                Some(path) => spendql::report::write_atomically(&path, &bytes),
                None => std::io::stdout()
                    .write_all(&bytes)
                    .map_err(|e| Error::Invalid(format!("<stdout>: {e}"))),
            }
        }
        Command::Demo { data, seed } => {
            let file = ConfigFile::default();
            let engine = Engine::open_with(
                data_dir(&data, &file),
                engine_config(&data, &file, "spendql demo".into())?,
            )
            .await?;
            let result = write_demo(&engine, seed, true).await;
            engine.shutdown().await?;
            result
        }
    }
}

async fn serve(
    data: &DataArgs,
    file: &ConfigFile,
    listen: SocketAddr,
    demo: bool,
    options: spendql::server::ServerOptions,
    otlp: Option<(SocketAddr, ingest::providers::otel::Mapping)>,
) -> Result<()> {
    let dir = data_dir(data, file);
    if !listen.ip().is_loopback() {
        let users = Users::load(&dir)?;
        if users.is_empty() || options.tls.is_none() {
            return Err(Error::Invalid(format!(
                "refusing to listen on {listen}: a non-loopback address needs users \
                 (`spendql user add`) and TLS (--tls-cert, --tls-key); loopback addresses \
                 (127.0.0.1, ::1) need neither"
            )));
        }
    }
    if let Some((addr, _)) = &otlp
        && !addr.ip().is_loopback()
    {
        return Err(Error::Invalid(format!(
            "refusing to receive OTLP on {addr}: the receiver has no authentication, so it \
             listens on loopback only (run an OpenTelemetry Collector next to it)"
        )));
    }
    // Bind first, so the LOCK file can name the real address (port 0 picks a free one).
    let bind = |addr: SocketAddr| async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Invalid(format!("cannot listen on {addr}: {e}")))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::Invalid(format!("cannot listen on {addr}: {e}")))?;
        Ok::<_, Error>((listener, local))
    };
    // A bad [[reports]] entry stops the server before it listens.
    let scheduled_reports = file
        .reports
        .iter()
        .map(spendql::report::schedule::ScheduledReport::from_config)
        .collect::<Result<Vec<_>>>()?;
    let (listener, local) = bind(listen).await?;
    let otlp = match otlp {
        Some((addr, mapping)) => Some((bind(addr).await?, mapping)),
        None => None,
    };
    let config = EngineConfig {
        reprice_stale_parts: true,
        ..engine_config(data, file, format!("spendql serve (listening on {local})"))?
    };
    let engine = Engine::open_with(&dir, config).await?;
    report_open(&engine);
    if demo {
        write_demo(&engine, 42, false).await?;
    }
    // One signal stops both servers and the background work; so does a failed server.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop = Arc::new(stop_tx);
    tokio::spawn({
        let stop = Arc::clone(&stop);
        async move {
            shutdown_signal().await;
            let _ = stop.send(true);
            // Not eprintln!: it panics when stderr is gone (a log pipe whose reader died),
            // and this task must never die between the signal and the stop.
            let _ = writeln!(std::io::stderr(), "spendql: shutting down");
        }
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let alert_options = file
        .alerts
        .as_ref()
        .map(AlertsConfig::options)
        .transpose()?
        .unwrap_or_default();
    engine
        .budgets()
        .set_max_staleness(alert_options.budget_check_staleness);
    let monitor = Monitor::new(engine.clone(), alert_options.retry.clone())?
        .run(alert_options.interval, stopped(stop_rx.clone()));
    let scheduler = spendql::report::schedule::run(
        engine.clone(),
        scheduled_reports,
        alert_options.retry,
        stopped(stop_rx.clone()),
    );
    let background = Background::spawn(async move {
        tokio::join!(monitor, scheduler);
    })
    .map_err(|e| Error::Invalid(format!("cannot start the background thread: {e}")))?;
    let receiver = otlp.map(|((listener, addr), mapping)| {
        eprintln!("spendql receiving OTLP/HTTP traces on {addr} (POST /v1/traces)");
        let options = spendql::otlp::OtlpOptions {
            mapping,
            ..Default::default()
        };
        tokio::spawn(spendql::otlp::run(
            listener,
            engine.clone(),
            options,
            stopped(stop_rx.clone()),
        ))
    });
    eprintln!(
        "spendql serving {} on {local}; try: psql -h {} -p {} spendql",
        dir.display(),
        local.ip(),
        local.port()
    );
    let result =
        spendql::server::run(listener, engine.clone(), options, stopped(stop_rx.clone())).await;
    if let Some(receiver) = receiver {
        // The wire server stops on the signal, or on an error: then the receiver stops too.
        if result.is_err() {
            receiver.abort();
        }
        match receiver.await {
            Ok(Err(e)) => tracing::error!("otlp receiver: {e}"),
            Err(e) if !e.is_cancelled() => tracing::error!("otlp receiver task: {e}"),
            _ => {}
        }
    }
    if result.is_err() {
        // The wire server failed: stop the background work too.
        let _ = stop.send(true);
    }
    if let Err(e) = background.join().await {
        tracing::error!("budget monitor and report scheduler: {e}");
    }
    engine.shutdown().await?;
    result
}

/// `spendql user add|remove|list`. Works while the server runs: it reads the store at
/// each connection.
fn user_command(command: UserCommand) -> Result<()> {
    let config = ConfigFile::default();
    match command {
        UserCommand::Add {
            data,
            name,
            role,
            password_stdin,
        } => {
            let password = read_password(password_stdin)?;
            let dir = data_dir(&data, &config);
            let existed = users::add_user(&dir, &name, &role, &password)?;
            let verb = if existed { "updated" } else { "added" };
            println!("{verb} user {name} with role {role}");
            Ok(())
        }
        UserCommand::Remove { data, name } => {
            if users::remove_user(&data_dir(&data, &config), &name)? {
                println!("removed user {name}");
                Ok(())
            } else {
                Err(Error::Invalid(format!("no user named {name}")))
            }
        }
        UserCommand::List { data } => {
            for user in Users::load(&data_dir(&data, &config))?.iter() {
                println!("{}\t{}", user.name, user.role);
            }
            Ok(())
        }
    }
}

/// The new password: one line of stdin, or typed twice at a prompt without echo.
fn read_password(from_stdin: bool) -> Result<String> {
    let stdin_error = |e: std::io::Error| Error::Invalid(format!("cannot read the password: {e}"));
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map_err(stdin_error)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::Invalid(
            "no terminal to prompt for the password: use --password-stdin".into(),
        ));
    }
    let first = rpassword::prompt_password("Password: ").map_err(stdin_error)?;
    let second = rpassword::prompt_password("Password again: ").map_err(stdin_error)?;
    if first != second {
        return Err(Error::Invalid("the passwords do not match".into()));
    }
    Ok(first)
}

fn report_open(engine: &Engine) {
    let report = engine.open_report();
    if report.replayed_rows > 0 {
        tracing::info!(
            "replayed {} usage rows from the write-ahead log",
            report.replayed_rows
        );
    }
    if let Some(file) = &report.truncated_file {
        tracing::warn!(
            "cut a torn write of {} bytes from {} (an interrupted write that was never acknowledged)",
            report.truncated_bytes,
            file.display()
        );
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `ingest --format openai-costs|anthropic-costs`: each file merged into `provider_costs`.
async fn ingest_cost_files(
    engine: &Engine,
    files: &[PathBuf],
    options: &IngestOptions,
) -> Result<()> {
    let table = engine
        .config_table("provider_costs")
        .ok_or_else(|| Error::Invalid("built-in table provider_costs is missing".into()))?;
    for path in files {
        let (table, path_buf, opts) = (Arc::clone(&table), path.clone(), options.clone());
        let report = tokio::task::spawn_blocking(move || {
            ingest::ingest_costs_file(&table, &path_buf, &opts)
        })
        .await
        .map_err(|e| Error::Invalid(format!("ingest task failed: {e}")))??;
        for bad in &report.bad_records {
            eprintln!("skipped {bad}");
        }
        if let Some(rejects) = &report.reject_file {
            eprintln!(
                "{} bad records (with reasons) written to {}",
                report.rejected,
                rejects.display()
            );
        }
        println!(
            "{}: {} cost rows read, {} added, {} restated, {} rejected; total {} USD ({:.2}s)",
            report.file,
            report.rows_read,
            report.added,
            report.replaced,
            report.rejected,
            rust_decimal::Decimal::try_from_i128_with_scale(report.total, 12)
                .map(|d| d.round_dp(6).to_string())
                .unwrap_or_else(|_| "(too large)".into()),
            report.seconds
        );
    }
    Ok(())
}

async fn ingest_files(engine: &Engine, files: &[PathBuf], options: &IngestOptions) -> Result<()> {
    let run_started = chrono::Utc::now().timestamp_micros();
    let mut totals = ingest::FileReport::default();
    for path in files {
        let writer_engine = engine.clone();
        let path_buf = path.clone();
        let opts = options.clone();
        let report = tokio::task::spawn_blocking(move || {
            ingest::ingest_file(writer_engine.usage_writer(), &path_buf, &opts)
        })
        .await
        .map_err(|e| Error::Invalid(format!("ingest task failed: {e}")))??;
        for bad in &report.bad_records {
            eprintln!("skipped {bad}");
        }
        if report.rejected > report.bad_records.len() as u64 {
            eprintln!(
                "... and {} more bad records in {}",
                report.rejected - report.bad_records.len() as u64,
                report.file
            );
        }
        if let Some(rejects) = &report.reject_file {
            eprintln!(
                "{} bad records (with reasons) written to {}",
                report.rejected,
                rejects.display()
            );
        }
        println!(
            "{}: {} rows read, {} stored, {} duplicates skipped, {} rejected ({:.2}s)",
            report.file,
            report.rows_read,
            report.stored,
            report.duplicates,
            report.rejected,
            report.seconds
        );
        totals.rows_read += report.rows_read;
        totals.stored += report.stored;
        totals.duplicates += report.duplicates;
        totals.rejected += report.rejected;
        totals.seconds += report.seconds;
        totals.min_ts = match (totals.min_ts, report.min_ts) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        totals.max_ts = match (totals.max_ts, report.max_ts) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    let range = match (totals.min_ts, totals.max_ts) {
        (Some(a), Some(b)) => format!("{} .. {}", format_ts(a), format_ts(b)),
        _ => "no rows".to_string(),
    };
    let rate = if totals.seconds > 0.0 {
        totals.rows_read as f64 / totals.seconds
    } else {
        0.0
    };
    println!(
        "total: {} files, {} rows stored, {} duplicates skipped, {} rejected; time range {}; {:.0} rows/s",
        files.len(),
        totals.stored,
        totals.duplicates,
        totals.rejected,
        range,
        rate
    );
    if totals.stored > 0 {
        print_cost_summary(engine, run_started).await?;
    }
    Ok(())
}

/// Tokens and list cost of the rows this run stored, and the models the catalog cannot
/// price (one scan; this process holds the data directory, so `ingested_at` tells them apart).
async fn print_cost_summary(engine: &Engine, run_started: i64) -> Result<()> {
    let query = format!(
        "SELECT CAST(provider AS VARCHAR) AS provider, CAST(model AS VARCHAR) AS model, \
           CAST(count(*) AS BIGINT) AS rows, \
           CAST(sum(input_tokens + cached_input_tokens + cache_write_tokens \
                    + cache_write_1h_tokens + output_tokens) AS BIGINT) AS tokens, \
           CAST(sum(input_cost + cached_cost + cache_write_cost + output_cost \
                    + request_cost) AS VARCHAR) AS cost, \
           CAST(sum(CASE WHEN input_cost IS NULL THEN 1 ELSE 0 END) AS BIGINT) AS unpriced \
         FROM priced_usage() WHERE ingested_at >= to_timestamp_micros({run_started}) \
         GROUP BY 1, 2 ORDER BY unpriced DESC, rows DESC"
    );
    let batches = engine.sql(&query).await?.collect().await?;
    let mut tokens = 0i64;
    let mut cost = rust_decimal::Decimal::ZERO;
    let mut unpriced = Vec::new();
    for batch in &batches {
        use arrow::array::{Array, AsArray};
        use arrow::datatypes::{DataType, Int64Type};
        let column = |i: usize, to: &DataType| arrow::compute::cast(batch.column(i), to);
        let (provider, model, token_sums, costs, missing) = (
            column(0, &DataType::Utf8)?,
            column(1, &DataType::Utf8)?,
            column(3, &DataType::Int64)?,
            column(4, &DataType::Utf8)?,
            column(5, &DataType::Int64)?,
        );
        let (provider, model, costs) = (
            provider.as_string::<i32>(),
            model.as_string::<i32>(),
            costs.as_string::<i32>(),
        );
        let (token_sums, missing) = (
            token_sums.as_primitive::<Int64Type>(),
            missing.as_primitive::<Int64Type>(),
        );
        for row in 0..batch.num_rows() {
            tokens = tokens.saturating_add(token_sums.value(row));
            if costs.is_valid(row) {
                cost += costs
                    .value(row)
                    .parse::<rust_decimal::Decimal>()
                    .map_err(|e| Error::Invalid(format!("cost summary: {e}")))?;
            }
            if missing.value(row) > 0 {
                unpriced.push(format!(
                    "{}/{} ({} rows)",
                    provider.value(row),
                    model.value(row),
                    missing.value(row)
                ));
            }
        }
    }
    println!(
        "       {tokens} tokens; list cost {} USD at the catalog's prices",
        cost.round_dp(6)
    );
    if !unpriced.is_empty() {
        let shown = unpriced.len().min(10);
        println!(
            "       no price for {} model(s): {}{} (see unpriced_usage)",
            unpriced.len(),
            unpriced[..shown].join(", "),
            if unpriced.len() > shown { ", ..." } else { "" }
        );
    }
    Ok(())
}

/// Remove the rows of the models the demo prices itself, so its prices (including its
/// planted price cut) are the only ones in force for them.
async fn replace_models(
    engine: &Engine,
    table: &str,
    batches: &[arrow::record_batch::RecordBatch],
) -> Result<()> {
    use arrow::array::AsArray;
    let mut keys = std::collections::BTreeSet::new();
    for batch in batches {
        let (Some(provider), Some(model)) = (
            batch.column_by_name("provider"),
            batch.column_by_name("model"),
        ) else {
            continue;
        };
        let (provider, model) = (provider.as_string::<i32>(), model.as_string::<i32>());
        for i in 0..batch.num_rows() {
            keys.insert(format!(
                "'{}/{}'",
                provider.value(i).replace('\'', "''"),
                model.value(i).replace('\'', "''")
            ));
        }
    }
    if keys.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = keys.into_iter().collect();
    engine
        .sql(&format!(
            "DELETE FROM {table} WHERE provider || '/' || model IN ({})",
            list.join(", ")
        ))
        .await?
        .collect()
        .await?;
    Ok(())
}

fn format_ts(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| micros.to_string())
}

/// Write the demo data set. With `require_empty`, refuse a directory that has data;
/// otherwise skip quietly when usage already has rows (a restart of `serve --demo`).
async fn write_demo(engine: &Engine, seed: u64, require_empty: bool) -> Result<()> {
    let existing = engine
        .sql("SELECT count(*) AS n FROM usage")
        .await?
        .collect()
        .await?;
    let rows = existing
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .map(|a| a.value(0))
        })
        .unwrap_or(0);
    if rows > 0 {
        if require_empty {
            return Err(Error::Invalid(format!(
                "the data directory already has {rows} usage rows; write the demo into a new \
                 directory with --data"
            )));
        }
        return Ok(());
    }
    let today = chrono::Utc::now().date_naive();
    let data = tokio::task::spawn_blocking(move || spendql::demo::generate(today, seed))
        .await
        .map_err(|e| Error::Invalid(format!("demo task failed: {e}")))??;
    for (table, batches) in data.tables {
        if table == "pricing" || table == "models" {
            replace_models(engine, table, &batches).await?;
        }
        engine.append(table, batches).await?;
    }
    let counts = engine.append("usage", data.usage).await?;
    eprintln!(
        "demo data written: {} usage rows over 180 days up to {today}",
        counts.stored
    );
    Ok(())
}

//! End-to-end tests: `run` on 127.0.0.1:0 driven by tokio-postgres.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use super::{ServerOptions, run};
use crate::Engine;

struct TestServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<crate::Result<()>>,
}

impl TestServer {
    async fn start(options: ServerOptions) -> (Self, Engine) {
        let engine = Engine::in_memory().await.expect("engine");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(listener, engine.clone(), options, async move {
            let _ = stopped.await;
        }));
        (
            Self {
                addr,
                stop: Some(stop),
                task,
            },
            engine,
        )
    }

    async fn connect_to(&self, dbname: &str) -> Result<Client, tokio_postgres::Error> {
        let config = format!(
            "host=127.0.0.1 port={} user=tester dbname={dbname} connect_timeout=10",
            self.addr.port()
        );
        let (client, connection) = tokio_postgres::connect(&config, NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    async fn connect(&self) -> Client {
        self.connect_to("spendql").await.expect("connect")
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("server stops in time")
            .expect("server task")
            .expect("server result");
    }
}

/// Values of the data rows of a simple query, as text.
fn texts(messages: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// Affected-row counts of the commands of a simple query.
fn counts(messages: &[SimpleQueryMessage]) -> Vec<u64> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .collect()
}

fn register_items(engine: &Engine) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("price", DataType::Decimal128(20, 12), true),
    ]));
    let table = MemTable::try_new(schema, vec![vec![]]).expect("memtable");
    engine
        .session()
        .register_table("items", Arc::new(table))
        .expect("register");
}

#[tokio::test]
async fn simple_and_extended_queries() {
    let (server, engine) = TestServer::start(ServerOptions::default()).await;
    register_items(&engine);
    let client = server.connect().await;

    let msgs = client
        .simple_query("SELECT 1 AS one, 'x' AS s; SELECT NULL AS n")
        .await
        .expect("simple");
    assert_eq!(
        texts(&msgs),
        vec![vec![Some("1".to_owned()), Some("x".to_owned())], vec![None]]
    );

    // DML command tags and visibility across statements of one string.
    let msgs = client
        .simple_query(
            "INSERT INTO items VALUES (1, 'a', 12.5), (2, 'b', NULL); \
             SELECT count(*) FROM items",
        )
        .await
        .expect("insert");
    assert_eq!(counts(&msgs), vec![2, 1]);
    assert_eq!(texts(&msgs), vec![vec![Some("2".to_owned())]]);

    // NUMERIC keeps its scale exactly, in text and in binary.
    let msgs = client
        .simple_query("SELECT price FROM items WHERE id = 1")
        .await
        .expect("numeric");
    assert_eq!(texts(&msgs), vec![vec![Some("12.500000000000".to_owned())]]);
    let row = client
        .query_one("SELECT price FROM items WHERE id = $1", &[&1i64])
        .await
        .expect("extended numeric");
    let price: rust_decimal::Decimal = row.get(0);
    assert_eq!(price.to_string(), "12.500000000000");

    // Extended protocol with parameters, inferred and cast-declared.
    let row = client
        .query_one("SELECT name FROM items WHERE id = $1", &[&2i64])
        .await
        .expect("param");
    assert_eq!(row.get::<_, String>(0), "b");
    let row = client
        .query_one("SELECT CAST($1 AS BIGINT) + 1 AS x", &[&41i64])
        .await
        .expect("cast param");
    assert_eq!(row.get::<_, i64>(0), 42);
    let row = client
        .query_one("SELECT $1 AS echo", &[&"hello"])
        .await
        .expect("text param");
    assert_eq!(row.get::<_, String>(0), "hello");

    let price = rust_decimal::Decimal::new(3_25, 2);
    assert_eq!(
        client
            .execute(
                "INSERT INTO items VALUES ($1, $2, $3)",
                &[&3i64, &"c", &price]
            )
            .await
            .expect("insert with params"),
        1
    );
    let msgs = client
        .simple_query("SELECT price FROM items WHERE id = 3")
        .await
        .expect("inserted price");
    assert_eq!(texts(&msgs), vec![vec![Some("3.250000000000".to_owned())]]);
    assert_eq!(
        client
            .execute("DELETE FROM items WHERE id = 3", &[])
            .await
            .expect("delete inserted"),
        1
    );

    assert_eq!(
        client
            .execute("UPDATE items SET name = $1 WHERE id = $2", &[&"z", &1i64])
            .await
            .expect("update"),
        1
    );
    assert_eq!(
        client
            .execute("DELETE FROM items WHERE id = $1", &[&2i64])
            .await
            .expect("delete"),
        1
    );
    let rows = client
        .query("SELECT id, name FROM items ORDER BY id", &[])
        .await
        .expect("select");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(1), "z");

    server.shutdown().await;
}

#[tokio::test]
async fn binary_results_decode_in_tokio_postgres() {
    let (server, _engine) = TestServer::start(ServerOptions::default()).await;
    let client = server.connect().await;
    let row = client
        .query_one(
            "SELECT true AS b, arrow_cast(7, 'Int16') AS i2, arrow_cast(8, 'Int32') AS i4, \
             CAST(9 AS BIGINT) AS i8, arrow_cast(1.5, 'Float32') AS f4, CAST(2.25 AS DOUBLE) AS f8, \
             'héllo' AS t, X'DEADBEEF' AS by, DATE '2026-10-01' AS d, \
             TIMESTAMP '2026-10-01 12:00:00.5' AS ts, \
             arrow_cast(TIMESTAMP '2026-10-01 12:00:00', 'Timestamp(Microsecond, Some(\"UTC\"))') AS tstz, \
             arrow_cast(TIME '12:34:56', 'Time64(Microsecond)') AS tm, \
             CAST(-1234.5678 AS DECIMAL(30, 6)) AS n, make_array(1, 2, NULL) AS arr, \
             CAST(NULL AS INT) AS nul",
            &[],
        )
        .await
        .expect("typed row");
    assert!(row.get::<_, bool>("b"));
    assert_eq!(row.get::<_, i16>("i2"), 7);
    assert_eq!(row.get::<_, i32>("i4"), 8);
    assert_eq!(row.get::<_, i64>("i8"), 9);
    assert_eq!(row.get::<_, f32>("f4"), 1.5);
    assert_eq!(row.get::<_, f64>("f8"), 2.25);
    assert_eq!(row.get::<_, String>("t"), "héllo");
    assert_eq!(row.get::<_, Vec<u8>>("by"), vec![0xde, 0xad, 0xbe, 0xef]);
    let date = chrono::NaiveDate::from_ymd_opt(2026, 10, 1).expect("date");
    assert_eq!(row.get::<_, chrono::NaiveDate>("d"), date);
    let noon = date.and_hms_opt(12, 0, 0).expect("time");
    assert_eq!(
        row.get::<_, chrono::NaiveDateTime>("ts"),
        noon + chrono::Duration::milliseconds(500)
    );
    assert_eq!(
        row.get::<_, chrono::DateTime<chrono::Utc>>("tstz"),
        noon.and_utc()
    );
    assert_eq!(
        row.get::<_, chrono::NaiveTime>("tm"),
        chrono::NaiveTime::from_hms_opt(12, 34, 56).expect("time")
    );
    assert_eq!(
        row.get::<_, rust_decimal::Decimal>("n").to_string(),
        "-1234.567800"
    );
    assert_eq!(
        row.get::<_, Vec<Option<i64>>>("arr"),
        vec![Some(1), Some(2), None]
    );
    assert_eq!(row.get::<_, Option<i32>>("nul"), None);
    server.shutdown().await;
}

#[tokio::test]
async fn startup_reports_postgres_parameters() {
    let (server, _engine) = TestServer::start(ServerOptions::default()).await;
    let config = format!(
        "host=127.0.0.1 port={} user=tester dbname=spendql application_name=itest",
        server.addr.port()
    );
    let (client, connection) = tokio_postgres::connect(&config, NoTls)
        .await
        .expect("connect");
    for (name, value) in [
        ("server_version", "16.6"),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("DateStyle", "ISO, MDY"),
        ("TimeZone", "UTC"),
        ("integer_datetimes", "on"),
        ("standard_conforming_strings", "on"),
        ("application_name", "itest"),
    ] {
        assert_eq!(connection.parameter(name), Some(value), "{name}");
    }
    tokio::spawn(connection);
    client.simple_query("SELECT 1").await.expect("query");
    server.shutdown().await;
}

#[tokio::test]
async fn session_statements() {
    let (server, _engine) = TestServer::start(ServerOptions::default()).await;
    let client = server.connect().await;

    let msgs = client
        .simple_query("BEGIN; SELECT 1; COMMIT; ROLLBACK")
        .await
        .expect("txn");
    assert_eq!(texts(&msgs), vec![vec![Some("1".to_owned())]]);

    client
        .simple_query("SET application_name = 'itest'; SET extra_float_digits = 3")
        .await
        .expect("set");
    let msgs = client
        .simple_query("SHOW application_name; SHOW server_version; SHOW DateStyle")
        .await
        .expect("show");
    assert_eq!(
        texts(&msgs),
        vec![
            vec![Some("itest".to_owned())],
            vec![Some("16.6".to_owned())],
            vec![Some("ISO, MDY".to_owned())]
        ]
    );

    // Empty and comment-only queries.
    let msgs = client.simple_query("").await.expect("empty");
    assert!(texts(&msgs).is_empty());
    let msgs = client.simple_query("-- ping").await.expect("comment");
    assert!(texts(&msgs).is_empty());

    // DDL answers with its command name and no rows.
    let msgs = client
        .simple_query("CREATE VIEW v_one AS SELECT 1 AS x; SELECT x FROM v_one; DROP VIEW v_one")
        .await
        .expect("ddl");
    assert_eq!(texts(&msgs), vec![vec![Some("1".to_owned())]]);

    // SET/SHOW through the extended protocol too.
    client
        .execute("SET TimeZone = 'UTC'", &[])
        .await
        .expect("extended set");
    let row = client
        .query_one("SHOW timezone", &[])
        .await
        .expect("extended show");
    assert_eq!(row.get::<_, String>(0), "UTC");

    server.shutdown().await;
}

#[tokio::test]
async fn errors_carry_sqlstate_and_keep_the_connection() {
    let (server, _engine) = TestServer::start(ServerOptions {
        max_query_bytes: 64,
        ..ServerOptions::default()
    })
    .await;
    let client = server.connect().await;

    let err = client
        .simple_query("SELECT * FROM nope")
        .await
        .expect_err("missing table");
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE));
    let err = client
        .query("SELECT * FROM nope WHERE x = $1", &[&1i64])
        .await
        .expect_err("missing table, extended");
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE));
    let err = client.simple_query("SELEC 1").await.expect_err("syntax");
    assert_eq!(err.code(), Some(&SqlState::SYNTAX_ERROR));
    let err = client
        .simple_query("SELECT nosuchfn(1)")
        .await
        .expect_err("function");
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_FUNCTION));
    let long = format!("SELECT '{}'", "x".repeat(100));
    let err = client.simple_query(&long).await.expect_err("too long");
    assert_eq!(err.code(), Some(&SqlState::PROGRAM_LIMIT_EXCEEDED));

    // Still usable.
    let msgs = client.simple_query("SELECT 2").await.expect("after errors");
    assert_eq!(texts(&msgs), vec![vec![Some("2".to_owned())]]);

    let err = server
        .connect_to("other")
        .await
        .expect_err("unknown database");
    assert_eq!(err.code(), Some(&SqlState::INVALID_CATALOG_NAME));

    server.shutdown().await;
}

#[tokio::test]
async fn connection_limit() {
    let (server, _engine) = TestServer::start(ServerOptions {
        max_connections: 1,
        ..ServerOptions::default()
    })
    .await;
    let first = server.connect().await;
    let err = server.connect_to("spendql").await.expect_err("over limit");
    assert_eq!(err.code(), Some(&SqlState::TOO_MANY_CONNECTIONS));
    drop(first);

    // The permit returns once the first connection is gone.
    let mut again = None;
    for _ in 0..50 {
        if let Ok(client) = server.connect_to("spendql").await {
            again = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = again.expect("reconnect after the first client left");
    again.simple_query("SELECT 1").await.expect("query");
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_idle_connections() {
    let (server, _engine) = TestServer::start(ServerOptions::default()).await;
    let client = server.connect().await;
    client.simple_query("SELECT 1").await.expect("query");
    server.shutdown().await;
    assert!(client.simple_query("SELECT 1").await.is_err());
}

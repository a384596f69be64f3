//! `COPY ... FROM STDIN` and `COPY ... TO STDOUT` as psql sends them (`\copy`, inline data).

use crate::common::Server;

#[test]
fn psql_copies_usage_and_config_rows_atomically_and_idempotently() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let csv = dir.path().join("usage.csv");
    std::fs::write(
        &csv,
        "event_id,ts,provider,model,input_tokens,cached_input_tokens,output_tokens,team\n\
         c1,2026-10-01T10:00:00Z,openai,gpt-4o-mini,1000000,0,100000,search\n\
         c2,2026-10-01T11:00:00Z,openai,gpt-4o-mini,2000,500,10,\n\
         c3,2026-10-02T09:30:00Z,anthropic,claude-sonnet-4-5-20250929,300,0,20,support\n",
    )
    .expect("write csv");
    let copy = format!(
        "\\copy usage (event_id, ts, provider, model, input_tokens, cached_input_tokens, \
         output_tokens, team) FROM '{}' WITH (FORMAT csv, HEADER true)\n",
        csv.display()
    );
    assert_eq!(server.psql("tester", &copy), "COPY 3\n");
    // The same events again store nothing: event_id is the idempotency key.
    assert_eq!(server.psql("tester", &copy), "COPY 0\n");
    assert_eq!(
        server.psql(
            "tester",
            "SELECT event_id, team IS NULL, input_tokens, list_cost FROM spend ORDER BY event_id;\n"
        ),
        // gpt-4o-mini: 1M x 0.15 + 100k x 0.60 per million = 0.21.
        "c1|f|1000000|0.210000000000\nc2|t|2000|0.000343500000\nc3|f|300|0.001200000000\n"
    );
    // Inline text-format data into a configuration table, then read it back.
    let inline = "COPY budgets (budget_id, scope, scope_value, amount) FROM STDIN;\n\
                  b1\tteam\tsearch\t1500.25\n\
                  b2\tglobal\t\\N\t9000\n\
                  \\.\n\
                  SELECT budget_id, scope_value IS NULL, amount FROM budgets ORDER BY budget_id;\n";
    assert_eq!(
        server.psql("tester", inline),
        "COPY 2\nb1|f|1500.250000000000\nb2|t|9000.000000000000\n"
    );
    // And out again: a query as CSV with a header (quoting what needs it), a table as text.
    let out = "UPDATE budgets SET scope_value = 'a, \"b\"' WHERE budget_id = 'b1';\n\
               COPY (SELECT budget_id, scope_value, amount FROM budgets ORDER BY budget_id) \
               TO STDOUT WITH (FORMAT csv, HEADER);\n\
               COPY budgets (budget_id, scope_value) TO STDOUT;\n";
    assert_eq!(
        server.psql("tester", out),
        "UPDATE 1\n\
         budget_id,scope_value,amount\n\
         b1,\"a, \"\"b\"\"\",1500.250000000000\n\
         b2,,9000.000000000000\n\
         b1\ta, \"b\"\n\
         b2\t\\N\n"
    );
}

#[test]
fn a_bad_copy_row_fails_the_statement_with_a_sqlstate_and_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let script = "\\set VERBOSITY verbose\n\
                  COPY usage (event_id, ts, provider, model, input_tokens, output_tokens) \
                  FROM STDIN WITH (FORMAT csv);\n\
                  ok1,2026-10-01T10:00:00Z,openai,gpt-4o,10,5\n\
                  bad,2026-10-01T10:00:00Z,openai,gpt-4o,ten,5\n\
                  \\.\n";
    let out = server.psql_output("tester", script);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the bad COPY succeeded");
    assert!(err.contains("22P02"), "{err}");
    assert!(err.contains("ten"), "{err}");
    // Nothing of the statement was stored, and the connection is still usable.
    assert_eq!(
        server.psql("tester", "SELECT count(*) FROM usage;\n"),
        "0\n"
    );
    // A row too short names its line.
    let short = "COPY budgets (budget_id, scope) FROM STDIN WITH (FORMAT csv);\nb1\n\\.\n";
    let out = server.psql_output("tester", short);
    assert!(!out.status.success(), "the short row was accepted");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 1: missing data for a column"), "{err}");
}

#[tokio::test]
async fn tokio_postgres_copies_in_and_out_over_the_extended_protocol() {
    use futures::{SinkExt, TryStreamExt};

    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let client = server.connect().await;
    let copy_in = "COPY usage (event_id, ts, provider, model, input_tokens, output_tokens) \
                   FROM STDIN WITH (FORMAT csv)";
    let data = "x1,2026-10-01T10:00:00Z,openai,gpt-4o-mini,1000,10\n\
                x2,2026-10-01T11:00:00Z,openai,gpt-4o-mini,2000,20\n";
    for expected in [2, 0] {
        let sink = client
            .copy_in(copy_in)
            .await
            .expect("COPY FROM STDIN starts");
        futures::pin_mut!(sink);
        sink.send(bytes::Bytes::from(data))
            .await
            .expect("send data");
        assert_eq!(sink.finish().await.expect("COPY completes"), expected);
    }
    // A row with a missing value fails the statement, stores nothing, and the connection
    // stays usable.
    let sink = client.copy_in(copy_in).await.expect("COPY starts");
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from("x3,2026-10-01T12:00:00Z,openai\n"))
        .await
        .expect("send");
    let err = sink.finish().await.expect_err("short row");
    assert_eq!(err.code().map(|c| c.code()), Some("22P04"), "{err}");

    let out = client
        .copy_out(
            "COPY (SELECT event_id, input_tokens FROM usage ORDER BY event_id) \
             TO STDOUT WITH (FORMAT csv, HEADER)",
        )
        .await
        .expect("COPY TO STDOUT");
    let chunks: Vec<bytes::Bytes> = out.try_collect().await.expect("copy data");
    let text: Vec<u8> = chunks.concat();
    assert_eq!(
        String::from_utf8(text).expect("utf8"),
        "event_id,input_tokens\nx1,1000\nx2,2000\n"
    );
    let n: i64 = client
        .query_one("SELECT count(*) FROM usage", &[])
        .await
        .expect("usable after the failed COPY")
        .get(0);
    assert_eq!(n, 2);
}

//! `pg_catalog` and the server-identity functions, as psql and drivers use them.

use crate::common::Server;

#[test]
fn psql_lists_and_describes_tables_views_and_databases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let tables = server.psql("tester", "\\dt\n");
    assert!(tables.contains("public|usage|table|spendql\n"), "{tables}");
    assert!(
        tables.contains("public|budgets|table|spendql\n"),
        "{tables}"
    );
    assert_eq!(tables.lines().count(), 14, "{tables}");
    let views = server.psql("tester", "\\dv\n");
    assert!(views.contains("public|spend|view|spendql\n"), "{views}");
    assert!(!views.contains("|table|"), "{views}");
    assert_eq!(server.psql("tester", "\\dn\n"), "public|spendql\n");
    assert!(
        server
            .psql("tester", "\\l\n")
            .starts_with("spendql|spendql|UTF8|")
    );

    // \d runs psql's whole sequence of catalog queries (columns, policies, publications,
    // inheritance, ...); every one must plan, or psql prints nothing.
    let budgets = server.psql("tester", "\\d budgets\n");
    assert!(
        budgets.starts_with("budget_id|text||not null|\n"),
        "{budgets}"
    );
    assert!(
        budgets.contains("amount|numeric(38,12)||not null|\n"),
        "{budgets}"
    );
    assert!(budgets.contains("starts_on|date|||\n"), "{budgets}");
    let usage = server.psql("tester", "\\d+ usage\n");
    assert!(
        usage.contains("ts|timestamp with time zone||not null||plain|||\n"),
        "{usage}"
    );
    assert!(
        usage.contains("reported_cost|numeric(38,12)||||extended|||\n"),
        "{usage}"
    );
    let spend = server.psql("tester", "\\d spend\n");
    assert!(spend.contains("list_cost|numeric(38,12)|||\n"), "{spend}");
    // \df lists SpendQL's functions (as psql lists functions outside pg_catalog), and
    // \df+ shows each one's description.
    let functions = server.psql("tester", "\\df\n");
    assert!(
        functions.contains(
            "public|token_cost|numeric(38,12)|provider, model, ts, input_tokens, output_tokens"
        ),
        "{functions}"
    );
    assert!(
        functions.contains("public|budget_check|TABLE(decision text, "),
        "{functions}"
    );
    assert!(
        functions.contains(
            "public|project_period_end|double precision|ts, value, period_end [, as_of]|agg"
        ),
        "{functions}"
    );
    assert!(
        functions.contains("public|cost_part|numeric(38,12)|parts, name|func"),
        "{functions}"
    );
    assert_eq!(functions.lines().count(), 13, "{functions}");
    let described = server.psql("tester", "\\x on\n\\df+ resolve_model\n");
    assert!(described.contains("Language|internal"), "{described}");
    assert!(described.contains("Description|"), "{described}");
    let description = server.psql(
        "tester",
        "SELECT obj_description(p.oid, 'pg_proc') FROM pg_proc p WHERE proname = 'budget_check'\n",
    );
    assert!(
        description.starts_with("Allow, warn or block a request"),
        "{description}"
    );
    let missing = server.psql_output("tester", "\\d nosuchtable\n");
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("Did not find any relation"),
        "{missing:?}"
    );
}

#[tokio::test]
async fn drivers_see_postgres_identity_settings_and_types() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let client = server.connect().await;
    let row = client
        .query_one(
            "SELECT version(), pg_catalog.version() = version(), current_database(), \
             current_schema(), current_user, session_user, current_setting('TimeZone'), \
             current_setting('server_version'), array_to_string(current_schemas(true), ',')",
            &[],
        )
        .await
        .expect("identity");
    let version: String = row.get(0);
    assert!(version.starts_with("PostgreSQL 16."), "{version}");
    assert!(version.contains("SpendQL"), "{version}");
    assert!(row.get::<_, bool>(1));
    assert_eq!(row.get::<_, String>(2), "spendql");
    assert_eq!(row.get::<_, String>(3), "public");
    assert_eq!(row.get::<_, String>(4), "tester");
    assert_eq!(row.get::<_, String>(5), "tester");
    assert_eq!(row.get::<_, String>(6), "UTC");
    assert_eq!(row.get::<_, String>(7), "16.6");
    assert_eq!(row.get::<_, String>(8), "pg_catalog,public");
    // current_setting follows this connection's SET, and only this connection's.
    client
        .batch_execute("SET application_name = 'grafana'")
        .await
        .expect("set");
    let other = server.connect().await;
    let mine: String = client
        .query_one("SELECT current_setting('application_name')", &[])
        .await
        .expect("mine")
        .get(0);
    let theirs: String = other
        .query_one("SELECT current_setting('application_name')", &[])
        .await
        .expect("theirs")
        .get(0);
    assert_eq!((mine.as_str(), theirs.as_str()), ("grafana", ""));

    // pgJDBC's TypeInfoCache lookup, unqualified catalog names and ::regclass.
    let row = client
        .query_one(
            "SELECT n.nspname = ANY(current_schemas(true)), n.nspname, t.typname \
             FROM pg_type t JOIN pg_namespace n ON t.typnamespace = n.oid WHERE t.oid = 1700",
            &[],
        )
        .await
        .expect("type lookup");
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, String>(2), "numeric");
    let columns: Vec<(String, String)> = client
        .query(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = 'public.budgets'::regclass AND attnum > 0 ORDER BY attnum",
            &[],
        )
        .await
        .expect("columns")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(columns.len(), 12);
    assert_eq!(columns[5], ("amount".into(), "numeric(38,12)".into()));
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .await
        .expect("pg_tables")
        .get(0);
    assert_eq!(tables, 14);
}

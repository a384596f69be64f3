//! Embed SpendQL in a Rust program: an in-memory engine, a price, some usage, a query.
//!
//! Run with `cargo run --example embed`.

use arrow::util::pretty::pretty_format_batches;

#[tokio::main]
async fn main() -> spendql::Result<()> {
    let engine = spendql::Engine::in_memory().await?;
    for statement in [
        "INSERT INTO pricing (provider, model, effective_from, input_per_mtok, cached_input_per_mtok, output_per_mtok)
         VALUES ('openai', 'gpt-4o', '2024-08-06T00:00:00Z', 2.50, 1.25, 10.00)",
        "INSERT INTO usage (event_id, ts, provider, model, input_tokens, cached_input_tokens, output_tokens, team)
         VALUES ('req-1', '2026-10-01T09:00:00Z', 'openai', 'gpt-4o', 1200, 800, 350, 'search'),
                ('req-2', '2026-10-01T09:05:00Z', 'openai', 'gpt-4o', 900, 0, 120, 'support')",
    ] {
        engine.sql(statement).await?.collect().await?;
    }
    let batches = engine
        .sql("SELECT team, sum(list_cost) AS cost FROM spend GROUP BY team ORDER BY team")
        .await?
        .collect()
        .await?;
    println!("{}", pretty_format_batches(&batches)?);

    // The same functions work in any DataFusion program.
    let ctx = datafusion::prelude::SessionContext::new();
    spendql_udfs::register_all(&ctx);
    Ok(())
}

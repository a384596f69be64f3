"""SQLAlchemy 2 reflection and pandas read_sql against a running spendql serve (psycopg 3
driver). Asserts results; exits non-zero on any mismatch.

Usage: python3 sqlalchemy_pandas_client.py HOST PORT
"""
import datetime
import decimal
import sys

import pandas as pd
from sqlalchemy import DateTime, Numeric, Text, create_engine, inspect, text


def main(host: str, port: int) -> None:
    engine = create_engine(f"postgresql+psycopg://tester@{host}:{port}/spendql")

    # Reflection: the tables, views and columns with their PostgreSQL types.
    insp = inspect(engine)
    assert "public" in insp.get_schema_names(), insp.get_schema_names()
    tables = insp.get_table_names()
    for name in ("usage", "pricing", "budgets", "alerts", "attribution_rules"):
        assert name in tables, tables
    views = insp.get_view_names()
    for name in ("spend", "budget_status", "spend_allocated"):
        assert name in views, views
    columns = {c["name"]: c for c in insp.get_columns("usage")}
    assert isinstance(columns["ts"]["type"], DateTime) and columns["ts"]["type"].timezone, columns["ts"]
    assert columns["ts"]["nullable"] is False, columns["ts"]
    cost_type = columns["reported_cost"]["type"]
    assert isinstance(cost_type, Numeric) and (cost_type.precision, cost_type.scale) == (38, 12), cost_type
    assert isinstance(columns["team"]["type"], Text), columns["team"]
    spend_columns = [c["name"] for c in insp.get_columns("spend")]
    assert "list_cost" in spend_columns and "effective_cost" in spend_columns, spend_columns
    assert insp.get_pk_constraint("usage")["constrained_columns"] == [], insp.get_pk_constraint("usage")
    assert insp.get_indexes("usage") == []

    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO pricing (provider, model, effective_from, input_per_mtok, output_per_mtok) "
                "VALUES ('acme', 'm1', '2020-01-01T00:00:00Z', 2, 4)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO usage (event_id, ts, provider, model, input_tokens, output_tokens, team, feature) "
                "VALUES (:id, :ts, 'acme', 'm1', :i, :o, :team, :feature)"
            ),
            [
                {"id": "s1", "ts": datetime.datetime(2026, 9, 1, 8, tzinfo=datetime.timezone.utc), "i": 500_000, "o": 250_000, "team": "search", "feature": "chat"},
                {"id": "s2", "ts": datetime.datetime(2026, 9, 2, 9, tzinfo=datetime.timezone.utc), "i": 1_000_000, "o": 0, "team": "ads", "feature": "chat"},
                {"id": "s3", "ts": datetime.datetime(2026, 10, 2, 9, tzinfo=datetime.timezone.utc), "i": 250_000, "o": 0, "team": "ads", "feature": None},
            ],
        )

    # pandas: a query, then a whole table through reflection.
    df = pd.read_sql(
        "SELECT date_trunc('month', ts) AS month, team, sum(list_cost) AS cost, count(*) AS calls "
        "FROM spend GROUP BY 1, 2 ORDER BY 1, 2",
        engine,
    )
    assert list(df.columns) == ["month", "team", "cost", "calls"], df.columns
    assert list(df.team) == ["ads", "search", "ads"], df
    assert list(df.cost) == [
        decimal.Decimal("2.000000000000"),
        decimal.Decimal("2.000000000000"),
        decimal.Decimal("0.500000000000"),
    ], df
    assert list(df.calls) == [1, 1, 1], df
    assert str(df.month.dtype).startswith("datetime64") and str(df.month.dt.tz) == "UTC", df.month.dtype
    assert df.month[0] == pd.Timestamp("2026-09-01", tz="UTC"), df.month

    usage = pd.read_sql_table("usage", engine, columns=["event_id", "input_tokens", "ts"])
    usage = usage.sort_values("event_id").reset_index(drop=True)
    assert list(usage.event_id) == ["s1", "s2", "s3"], usage
    assert list(usage.input_tokens) == [500_000, 1_000_000, 250_000], usage

    with_params = pd.read_sql(
        text("SELECT count(*) AS n FROM spend WHERE team = :team AND list_cost > :floor"),
        engine,
        params={"team": "ads", "floor": decimal.Decimal("1")},
    )
    assert with_params.n[0] == 1, with_params
    print("sqlalchemy+pandas: ok")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))

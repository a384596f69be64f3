"""asyncpg against a running spendql serve: binary protocol, server-side prepared statements,
type introspection. Asserts results; exits non-zero on any mismatch.

Usage: python3 asyncpg_client.py HOST PORT
"""
import asyncio
import datetime
import decimal
import sys

import asyncpg

UTC = datetime.timezone.utc


async def main(host: str, port: int) -> None:
    conn = await asyncpg.connect(host=host, port=port, user="tester", database="spendql")
    try:
        version = await conn.fetchval("SELECT version()")
        assert version.startswith("PostgreSQL 16.") and "SpendQL" in version, version
        assert conn.get_server_version().major == 16, conn.get_server_version()

        await conn.execute(
            "INSERT INTO pricing (provider, model, effective_from, input_per_mtok, output_per_mtok) "
            "VALUES ('acme', 'm1', '2020-01-01T00:00:00Z', 1.5, 2)"
        )
        # Parameters typed from the statement: timestamptz, bigint, text.
        await conn.executemany(
            "INSERT INTO usage (event_id, ts, provider, model, input_tokens, output_tokens, team) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            [
                ("a1", datetime.datetime(2026, 10, 1, 10, 0, tzinfo=UTC), "acme", "m1", 1_000_000, 500_000, "search"),
                ("a2", datetime.datetime(2026, 10, 2, 11, 30, tzinfo=UTC), "acme", "m1", 3, 1, "search"),
                ("a3", datetime.datetime(2026, 10, 3, 12, 0, tzinfo=UTC), "acme", "m1", 2_000_000, 0, None),
            ],
        )

        # NUMERIC exact with its scale, in binary.
        rows = await conn.fetch(
            "SELECT team, sum(list_cost) AS cost, count(*) AS n FROM spend "
            "GROUP BY team ORDER BY team NULLS LAST"
        )
        assert [(r["team"], r["cost"], r["n"]) for r in rows] == [
            ("search", decimal.Decimal("2.500006500000"), 2),
            (None, decimal.Decimal("3.000000000000"), 1),
        ], rows

        # TIMESTAMPTZ, DATE, INTERVAL, BOOL, arrays.
        row = await conn.fetchrow(
            "SELECT max(ts) AS last, CAST(max(ts) AS DATE) AS day, "
            "max(ts) - min(ts) AS span, count(*) > 2 AS many, "
            "array_agg(event_id ORDER BY event_id) AS ids FROM usage"
        )
        assert row["last"] == datetime.datetime(2026, 10, 3, 12, 0, tzinfo=UTC), row
        assert row["day"] == datetime.date(2026, 10, 3), row
        assert row["span"] == datetime.timedelta(days=2, hours=2), row
        assert row["many"] is True, row
        assert row["ids"] == ["a1", "a2", "a3"], row

        # A prepared statement reused many times.
        stmt = await conn.prepare("SELECT count(*) FROM usage WHERE team = $1 AND input_tokens > $2")
        for _ in range(10):
            assert await stmt.fetchval("search", 10) == 1

        # Parameters inside a table function's arguments.
        await conn.execute(
            "INSERT INTO budgets (budget_id, scope, scope_value, period, amount, enforcement) "
            "VALUES ('s', 'team', 'search', 'year', 3, 'block')"
        )
        decision = await conn.fetchrow(
            "SELECT decision, budget_id FROM budget_check($1, $2, $3)", "team", "search", "0.25"
        )
        assert (decision["decision"], decision["budget_id"]) in {("allow", "s"), ("warn", "s")}, decision
        blocked = await conn.fetchval("SELECT decision FROM budget_check($1, $2, $3)", "team", "search", "1")
        assert blocked == "block", blocked

        # SQLSTATEs as asyncpg's exception classes.
        try:
            await conn.fetch("SELECT * FROM no_such_table")
            raise AssertionError("no error for a missing table")
        except asyncpg.exceptions.UndefinedTableError:
            pass
        try:
            await conn.fetch("SELECT 1 / 0")
            raise AssertionError("no error for a division by zero")
        except asyncpg.exceptions.DivisionByZeroError:
            pass
        # The connection is still usable.
        assert await conn.fetchval("SELECT count(*) FROM usage") == 3

        # COPY out as CSV.
        chunks = []

        async def sink(data: bytes) -> None:
            chunks.append(data)

        await conn.copy_from_query(
            "SELECT event_id, team FROM usage ORDER BY event_id", output=sink, format="csv"
        )
        assert b"".join(chunks) == b"a1,search\na2,search\na3,\n", chunks
    finally:
        await conn.close()
    print("asyncpg: ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))

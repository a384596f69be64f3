"""psycopg 3 against a running spendql serve: asserts results, exits non-zero on any mismatch.

Usage: python3 psycopg_client.py HOST PORT
"""
import datetime
import decimal
import sys

import psycopg
from psycopg import errors


def main(host: str, port: int) -> None:
    with psycopg.connect(host=host, port=port, user="tester", dbname="spendql", autocommit=True) as conn:
        assert conn.info.server_version >= 160000, conn.info.server_version
        with conn.cursor() as cur:
            cur.execute("SELECT version()")
            (version,) = cur.fetchone()
            assert version.startswith("PostgreSQL 16."), version

            # Server-side binding of typed parameters, NUMERIC exact with its scale.
            cur.execute(
                "INSERT INTO budgets (budget_id, scope, scope_value, amount) VALUES (%s, %s, %s, %s)",
                ("py1", "team", "search", decimal.Decimal("1234.56")),
            )
            cur.execute("SELECT budget_id, amount FROM budgets WHERE scope_value = %s", ("search",))
            rows = cur.fetchall()
            assert rows == [("py1", decimal.Decimal("1234.560000000000"))], rows

            # COPY FROM STDIN, row by row, then the rows priced by the spend view.
            with cur.copy(
                "COPY usage (event_id, ts, provider, model, input_tokens, output_tokens, team) FROM STDIN"
            ) as copy:
                copy.write_row(("p1", "2026-10-01T10:00:00Z", "openai", "gpt-4o-mini", 1000000, 100000, "search"))
                copy.write_row(("p2", "2026-10-02T10:00:00Z", "openai", "gpt-4o-mini", 2000, 10, None))
            cur.execute("SELECT event_id, ts, team, list_cost FROM spend ORDER BY event_id")
            rows = cur.fetchall()
            assert len(rows) == 2, rows
            event_id, ts, team, cost = rows[0]
            assert (event_id, team) == ("p1", "search"), rows[0]
            assert ts == datetime.datetime(2026, 10, 1, 10, tzinfo=datetime.timezone.utc), ts
            # gpt-4o-mini: 1M input x 0.15 + 100k output x 0.60 per million.
            assert cost == decimal.Decimal("0.210000000000"), cost
            assert rows[1][2] is None

            # The same statement many times (psycopg prepares it server-side after 5 uses).
            for i in range(8):
                cur.execute("SELECT count(*) FROM usage WHERE input_tokens > %s", (i,))
                assert cur.fetchone() == (2,)

            # Errors arrive as psycopg's exception classes (by SQLSTATE).
            try:
                cur.execute("SELECT * FROM no_such_table")
            except errors.UndefinedTable:
                pass
            else:
                raise AssertionError("expected UndefinedTable")
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)

        # LIST<STRUCT<ts, yhat, lo, hi>> (what forecast returns): an array of records, in
        # text and in binary, NULL fields included.
        forecast = (
            "SELECT [named_struct('ts', TIMESTAMPTZ '2026-01-01 00:00:00+00', 'yhat', 1.5, "
            "'lo', CAST(NULL AS DOUBLE), 'hi', 2.0), named_struct('ts', TIMESTAMPTZ "
            "'2026-01-02 00:00:00+00', 'yhat', 2.5, 'lo', 2.0, 'hi', 3.0)] AS f"
        )
        with conn.cursor() as cur:
            cur.execute(forecast)
            (points,) = cur.fetchone()
            assert points == [
                ("2026-01-01 00:00:00+00", "1.5", None, "2"),
                ("2026-01-02 00:00:00+00", "2.5", "2", "3"),
            ], points
        with conn.cursor(binary=True) as cur:
            cur.execute(forecast)
            (points,) = cur.fetchone()
            utc = datetime.timezone.utc
            assert points == [
                (datetime.datetime(2026, 1, 1, tzinfo=utc), 1.5, None, 2.0),
                (datetime.datetime(2026, 1, 2, tzinfo=utc), 2.5, 2.0, 3.0),
            ], points
    print("psycopg: ok")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))

// node-postgres against a running spendql serve: asserts results, exits non-zero on failure.
// Usage: node node_pg_client.js HOST PORT
'use strict';
const assert = require('node:assert/strict');
const { Client } = require('pg');

async function main(host, port) {
  const client = new Client({ host, port, user: 'tester', database: 'spendql' });
  await client.connect();
  try {
    const version = await client.query('SELECT version() AS v');
    assert.match(version.rows[0].v, /^PostgreSQL 16\./);

    // Untyped parameters ($n with type 0): the server infers their types from context.
    await client.query(
      'INSERT INTO budgets (budget_id, scope, scope_value, amount) VALUES ($1, $2, $3, $4)',
      ['js1', 'team', 'ads', '99.5'],
    );
    const budgets = await client.query(
      'SELECT budget_id, amount, starts_on FROM budgets WHERE scope_value = $1', ['ads']);
    assert.equal(budgets.rows.length, 1);
    assert.equal(budgets.rows[0].budget_id, 'js1');
    // NUMERIC arrives as exact text with its scale.
    assert.equal(budgets.rows[0].amount, '99.500000000000');
    assert.equal(budgets.rows[0].starts_on, null);

    const typed = await client.query('SELECT $1::bigint + 1 AS n, $2::text AS t', ['41', 'x']);
    assert.equal(typed.rows[0].n, '42');
    assert.equal(typed.rows[0].t, 'x');

    // A named prepared statement reused.
    for (let i = 0; i < 6; i++) {
      const r = await client.query({
        name: 'count-budgets',
        text: "SELECT count(*) AS n FROM budgets WHERE scope_value = 'ads' AND amount > $1",
        values: [i],
      });
      assert.equal(r.rows[0].n, '1');
    }

    await assert.rejects(client.query('SELECT * FROM no_such_table'), (err) => {
      assert.equal(err.code, '42P01');
      return true;
    });
    // INTEGER arrives as a JS number (BIGINT, like count(*), as text: node-postgres' rule).
    const after = await client.query("SELECT CAST(1 AS INTEGER) AS one, count(*) AS n FROM budgets WHERE scope_value = 'ads'");
    assert.equal(after.rows[0].one, 1);
    assert.equal(after.rows[0].n, '1');
  } finally {
    await client.end();
  }
  console.log('node-postgres: ok');
}

main(process.argv[2], Number(process.argv[3])).catch((err) => {
  console.error(err);
  process.exit(1);
});

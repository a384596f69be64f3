// pgJDBC against a running spendql serve: asserts results, exits non-zero on failure.
// Usage: java -cp /usr/share/java/postgresql.jar JdbcClient.java HOST PORT
import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Types;
import java.util.ArrayList;
import java.util.List;

public class JdbcClient {
    static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError(what);
        }
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://" + args[0] + ":" + args[1] + "/spendql";
        try (Connection conn = DriverManager.getConnection(url, "tester", "")) {
            DatabaseMetaData meta = conn.getMetaData();
            check(meta.getDatabaseProductVersion().startsWith("16."), meta.getDatabaseProductVersion());

            List<String> tables = new ArrayList<>();
            try (ResultSet rs = meta.getTables(null, "public", "%", new String[] {"TABLE"})) {
                while (rs.next()) {
                    tables.add(rs.getString("TABLE_NAME"));
                }
            }
            check(tables.contains("usage") && tables.contains("budgets"), "getTables: " + tables);
            try (ResultSet rs = meta.getSchemas()) {
                boolean publicSeen = false;
                while (rs.next()) {
                    publicSeen |= "public".equals(rs.getString("TABLE_SCHEM"));
                }
                check(publicSeen, "getSchemas has public");
            }

            // getColumns: JDBC types and names for Metabase / DBeaver field lists.
            List<String> columns = new ArrayList<>();
            try (ResultSet rs = meta.getColumns(null, "public", "budgets", "%")) {
                while (rs.next()) {
                    columns.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME") + ":"
                            + rs.getInt("DATA_TYPE") + ":" + rs.getString("IS_NULLABLE"));
                }
            }
            check(columns.size() == 12, "getColumns: " + columns);
            check(columns.get(0).equals("budget_id:text:" + Types.VARCHAR + ":NO"), "budget_id: " + columns);
            check(columns.get(5).equals("amount:numeric:" + Types.NUMERIC + ":NO"), "amount: " + columns);
            try (ResultSet rs = meta.getPrimaryKeys(null, "public", "budgets")) {
                check(!rs.next(), "no primary keys");
            }
            int types = 0;
            try (ResultSet rs = meta.getTypeInfo()) {
                while (rs.next()) {
                    types++;
                }
            }
            check(types > 10, "getTypeInfo lists the types: " + types);

            try (Statement st = conn.createStatement()) {
                st.execute("INSERT INTO budgets (budget_id, scope, scope_value, amount) "
                        + "VALUES ('j1', 'team', 'platform', 2500.125)");
            }
            // pgJDBC switches to a named server-side statement and binary results after five
            // executions: every one must give the same exact answer.
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT budget_id, amount, scope FROM budgets WHERE scope_value = ?")) {
                for (int i = 0; i < 8; i++) {
                    ps.setString(1, "platform");
                    try (ResultSet rs = ps.executeQuery()) {
                        check(rs.next(), "a row on execution " + i);
                        check("j1".equals(rs.getString(1)), "budget_id");
                        BigDecimal amount = rs.getBigDecimal(2);
                        check(new BigDecimal("2500.125000000000").equals(amount),
                                "amount on execution " + i + ": " + amount);
                        check(rs.getMetaData().getColumnType(2) == Types.NUMERIC, "NUMERIC column");
                        check(!rs.next(), "one row");
                    }
                }
            }
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT CAST(? AS BIGINT) * 10, CAST(? AS TIMESTAMPTZ)")) {
                for (int i = 1; i <= 7; i++) {
                    ps.setLong(1, i);
                    ps.setString(2, "2026-10-0" + i + "T12:00:00Z");
                    try (ResultSet rs = ps.executeQuery()) {
                        check(rs.next() && rs.getLong(1) == i * 10, "product " + i);
                        check(rs.getTimestamp(2).toInstant().toString()
                                .equals("2026-10-0" + i + "T12:00:00Z"), "timestamp " + i);
                    }
                }
            }
            try (Statement st = conn.createStatement()) {
                st.executeQuery("SELECT * FROM no_such_table");
                throw new AssertionError("expected an error");
            } catch (SQLException e) {
                check("42P01".equals(e.getSQLState()), "SQLSTATE " + e.getSQLState());
            }
        }
        System.out.println("pgjdbc: ok");
    }
}

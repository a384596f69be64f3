//! `COPY table [(columns)] FROM STDIN [WITH (FORMAT text|csv, HEADER, DELIMITER, NULL, QUOTE)]`
//! and `COPY (query) | table TO STDOUT [WITH (...)]` over the simple query protocol, as psql's
//! `\copy` and drivers' copy APIs send them.
//!
//! The data is collected (up to [`MAX_COPY_BYTES`]), parsed as Postgres's text or CSV format,
//! and stored by one `INSERT INTO table (columns) SELECT ...` over it: the same path as any
//! INSERT, so defaults, NOT NULL, type checks, idempotent `event_id`s in `usage`, durability
//! (fsync before `COPY n`) and all-or-nothing per statement come with it.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider, SchemaProvider, TableProvider,
};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Statement,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use pgwire::error::PgWireResult;

use super::encode::write_text;
use super::sqlstate::{
    BAD_COPY_FILE_FORMAT, FEATURE_NOT_SUPPORTED, PROGRAM_LIMIT_EXCEEDED, UNDEFINED_TABLE,
};
use super::{df_error, pg_error};
use crate::engine::Engine;

/// The most data one COPY may send; the statement is atomic, so it is held until the end.
pub const MAX_COPY_BYTES: usize = 256 << 20;

#[derive(Debug, Clone, Copy, PartialEq)]
enum CopyFormat {
    Text,
    Csv,
}

/// How rows are written: Postgres's text or CSV format and their options.
#[derive(Debug, Clone)]
struct Layout {
    format: CopyFormat,
    header: bool,
    delimiter: u8,
    null: String,
    quote: u8,
}

/// A `COPY ... FROM STDIN` in progress: where the rows go and how they are written.
#[derive(Debug)]
pub struct CopyIn {
    table: String,
    columns: Vec<String>,
    layout: Layout,
    data: Vec<u8>,
}

/// A `COPY ... TO STDOUT`: the query whose rows are sent, and how.
#[derive(Debug)]
pub struct CopyOut {
    query: String,
    layout: Layout,
}

impl CopyOut {
    /// The statement as a COPY TO STDOUT, or `None` for any other statement.
    pub fn parse(sql: &str) -> Option<PgWireResult<CopyOut>> {
        let Statement::Copy {
            source,
            to: true,
            target: CopyTarget::Stdout,
            options,
            legacy_options,
            ..
        } = parse_copy(sql)?
        else {
            return None;
        };
        let query = match source {
            CopySource::Query(query) => query.to_string(),
            CopySource::Table {
                table_name,
                columns,
            } if columns.is_empty() => format!("SELECT * FROM {table_name}"),
            CopySource::Table {
                table_name,
                columns,
            } => format!(
                "SELECT {} FROM {table_name}",
                columns
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        Some(Layout::parse(&options, &legacy_options).map(|layout| CopyOut { query, layout }))
    }

    pub fn query(&self) -> &str {
        &self.query
    }

    /// The header line (CSV with HEADER), if any.
    pub fn header(&self, schema: &Schema) -> Option<Vec<u8>> {
        if !self.layout.header {
            return None;
        }
        let mut line = String::new();
        for (i, field) in schema.fields().iter().enumerate() {
            if i > 0 {
                line.push(self.layout.delimiter as char);
            }
            self.layout.push_csv(field.name(), &mut line);
        }
        line.push('\n');
        Some(line.into_bytes())
    }

    /// One line per row, in the layout's format.
    pub fn rows(&self, batch: &RecordBatch) -> PgWireResult<Vec<Vec<u8>>> {
        let mut lines = Vec::with_capacity(batch.num_rows());
        let mut value = String::new();
        for row in 0..batch.num_rows() {
            let mut line = String::new();
            for (i, column) in batch.columns().iter().enumerate() {
                if i > 0 {
                    line.push(self.layout.delimiter as char);
                }
                if column.is_null(row) {
                    line.push_str(&self.layout.null);
                    continue;
                }
                value.clear();
                write_text(column.as_ref(), row, &mut value).map_err(df_error)?;
                match self.layout.format {
                    CopyFormat::Csv => self.layout.push_csv(&value, &mut line),
                    CopyFormat::Text => escape_text(&value, self.layout.delimiter, &mut line),
                }
            }
            line.push('\n');
            lines.push(line.into_bytes());
        }
        Ok(lines)
    }
}

/// The statement if `sql` is one COPY statement (sqlparser knows COPY FROM STDIN and TO
/// STDOUT, which DataFusion's parser does not).
fn parse_copy(sql: &str) -> Option<Statement> {
    let head = sql.trim_start();
    if !head
        .get(..4)
        .is_some_and(|w| w.eq_ignore_ascii_case("copy"))
    {
        return None;
    }
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    if statements.len() != 1 {
        return None;
    }
    statements.pop()
}

/// The text format's escapes for one value.
fn escape_text(value: &str, delimiter: u8, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c as u32 == u32::from(delimiter) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
}

impl Layout {
    /// The WITH options (and the pre-9.0 forms).
    fn parse(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> PgWireResult<Layout> {
        let mut layout = Layout {
            format: CopyFormat::Text,
            header: false,
            delimiter: b'\t',
            null: "\\N".into(),
            quote: b'"',
        };
        let unsupported = |what: String| {
            pg_error(
                FEATURE_NOT_SUPPORTED,
                format!("COPY option {what} is not supported"),
            )
        };
        let mut delimiter = None;
        let mut null = None;
        for option in options {
            match option {
                CopyOption::Format(f) if f.value.eq_ignore_ascii_case("csv") => {
                    layout.format = CopyFormat::Csv;
                }
                CopyOption::Format(f) if f.value.eq_ignore_ascii_case("text") => {}
                CopyOption::Format(f) => {
                    return Err(pg_error(
                        FEATURE_NOT_SUPPORTED,
                        format!("COPY format {} is not supported (text, csv)", f.value),
                    ));
                }
                CopyOption::Header(h) => layout.header = *h,
                CopyOption::Delimiter(d) => delimiter = Some(*d),
                CopyOption::Null(n) => null = Some(n.clone()),
                CopyOption::Quote(q) => layout.quote = ascii(*q, "QUOTE")?,
                CopyOption::Encoding(e)
                    if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
                other => return Err(unsupported(other.to_string())),
            }
        }
        for option in legacy {
            match option {
                CopyLegacyOption::Csv(csv) => {
                    layout.format = CopyFormat::Csv;
                    for o in csv {
                        match o {
                            CopyLegacyCsvOption::Header => layout.header = true,
                            CopyLegacyCsvOption::Quote(q) => layout.quote = ascii(*q, "QUOTE")?,
                            other => return Err(unsupported(other.to_string())),
                        }
                    }
                }
                CopyLegacyOption::Header => layout.header = true,
                CopyLegacyOption::Delimiter(d) => delimiter = Some(*d),
                CopyLegacyOption::Null(n) => null = Some(n.clone()),
                other => return Err(unsupported(other.to_string())),
            }
        }
        if layout.format == CopyFormat::Csv {
            layout.delimiter = b',';
            layout.null = String::new();
        }
        if let Some(d) = delimiter {
            layout.delimiter = ascii(d, "DELIMITER")?;
        }
        if let Some(n) = null {
            layout.null = n;
        }
        if layout.header && layout.format == CopyFormat::Text {
            return Err(pg_error(
                FEATURE_NOT_SUPPORTED,
                "COPY HEADER is available only in CSV mode",
            ));
        }
        Ok(layout)
    }

    /// A CSV value, quoted when it has to be: it holds the delimiter, a quote or a line
    /// break, or it would read back as NULL.
    fn push_csv(&self, value: &str, out: &mut String) {
        let quote = self.quote as char;
        let needs = value.is_empty()
            || value == self.null
            || value
                .bytes()
                .any(|b| b == self.delimiter || b == self.quote || b == b'\n' || b == b'\r');
        if !needs {
            out.push_str(value);
            return;
        }
        out.push(quote);
        for c in value.chars() {
            if c == quote {
                out.push(quote);
            }
            out.push(c);
        }
        out.push(quote);
    }
}

impl CopyIn {
    /// The statement as a COPY FROM STDIN, or `None` for any other statement (which then
    /// takes the normal path).
    pub fn parse(sql: &str) -> Option<PgWireResult<CopyIn>> {
        let Statement::Copy {
            source,
            to: false,
            target: CopyTarget::Stdin,
            options,
            legacy_options,
            ..
        } = parse_copy(sql)?
        else {
            return None;
        };
        Some(Self::from_parts(source, &options, &legacy_options))
    }

    fn from_parts(
        source: CopySource,
        options: &[CopyOption],
        legacy: &[CopyLegacyOption],
    ) -> PgWireResult<CopyIn> {
        let CopySource::Table {
            table_name,
            columns,
        } = source
        else {
            return Err(pg_error(
                FEATURE_NOT_SUPPORTED,
                "COPY (query) FROM is not valid",
            ));
        };
        let table = table_name.to_string();
        let def = crate::schema::table_def(&table).ok_or_else(|| {
            pg_error(
                UNDEFINED_TABLE,
                format!("relation \"{table}\" does not exist (COPY loads the built-in tables)"),
            )
        })?;
        let columns: Vec<String> = if columns.is_empty() {
            def.schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .filter(|n| !(def.name == "usage" && matches!(n.as_str(), "ingested_at")))
                .collect()
        } else {
            columns.into_iter().map(|c| c.value).collect()
        };
        let layout = Layout::parse(options, legacy)?;
        Ok(CopyIn {
            table,
            columns,
            layout,
            data: Vec::new(),
        })
    }

    /// The built-in table the rows go into.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Columns the client will send (for the CopyInResponse).
    pub fn column_count(&self) -> usize {
        self.columns.len()
    }

    /// Take one CopyData message.
    pub fn add(&mut self, data: &[u8]) -> PgWireResult<()> {
        if self.data.len() + data.len() > MAX_COPY_BYTES {
            return Err(pg_error(
                PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "COPY data is larger than {MAX_COPY_BYTES} bytes; split it into several COPY statements"
                ),
            ));
        }
        self.data.extend_from_slice(data);
        Ok(())
    }

    /// Parse the data and insert it; returns the rows stored.
    pub async fn finish(self, engine: &Engine) -> PgWireResult<u64> {
        let rows = match self.layout.format {
            CopyFormat::Text => self.parse_text()?,
            CopyFormat::Csv => self.parse_csv()?,
        };
        let n = rows.len();
        if n == 0 {
            return Ok(0);
        }
        let columns: Vec<ArrayRef> = (0..self.columns.len())
            .map(|c| {
                Arc::new(
                    rows.iter()
                        .map(|r| r[c].as_deref())
                        .collect::<StringArray>(),
                ) as ArrayRef
            })
            .collect();
        let fields: Vec<Field> = (0..self.columns.len())
            .map(|c| Field::new(format!("c{c}"), DataType::Utf8, true))
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns)
            .map_err(|e| pg_error(BAD_COPY_FILE_FORMAT, e.to_string()))?;
        let input = MemTable::try_new(schema, vec![vec![batch]]).map_err(df_error)?;
        let ctx = private_session(engine, Arc::new(input)).map_err(df_error)?;
        let targets = self
            .columns
            .iter()
            .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(", ");
        let sources = (0..self.columns.len())
            .map(|c| format!("c{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO public.\"{}\" ({targets}) SELECT {sources} FROM copy_input.data",
            self.table
        );
        let batches = ctx
            .sql(&sql)
            .await
            .map_err(df_error)?
            .collect()
            .await
            .map_err(df_error)?;
        Ok(super::session::affected_rows(&batches) as u64)
    }

    /// Postgres's text format: one line per row, `delimiter`-separated, `\N` for NULL and
    /// backslash escapes; `\.` ends the data.
    fn parse_text(&self) -> PgWireResult<Vec<Vec<Option<String>>>> {
        let text = self.utf8()?;
        let width = self.columns.len();
        let mut rows = Vec::new();
        for (i, line) in text.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line == "\\." {
                break;
            }
            if line.is_empty() && i + 1 == text.split('\n').count() {
                continue;
            }
            let mut row = Vec::with_capacity(width);
            for raw in line.split(self.layout.delimiter as char) {
                row.push(if raw == self.layout.null {
                    None
                } else {
                    Some(unescape(raw).map_err(|e| {
                        pg_error(BAD_COPY_FILE_FORMAT, format!("line {}: {e}", i + 1))
                    })?)
                });
            }
            self.check_width(row.len(), i + 1)?;
            rows.push(row);
        }
        Ok(rows)
    }

    fn parse_csv(&self) -> PgWireResult<Vec<Vec<Option<String>>>> {
        let text = self.utf8()?;
        // psql ends CSV data with `\.` on its own line only for inline data; drop it.
        let body = text
            .strip_suffix("\\.\n")
            .or_else(|| text.strip_suffix("\\.\r\n"))
            .unwrap_or(text);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(self.layout.header)
            .delimiter(self.layout.delimiter)
            .quote(self.layout.quote)
            .flexible(true)
            .from_reader(body.as_bytes());
        let mut rows = Vec::new();
        for (i, record) in reader.records().enumerate() {
            let line = i + 1 + usize::from(self.layout.header);
            let record =
                record.map_err(|e| pg_error(BAD_COPY_FILE_FORMAT, format!("line {line}: {e}")))?;
            self.check_width(record.len(), line)?;
            rows.push(
                record
                    .iter()
                    .map(|v| (v != self.layout.null).then(|| v.to_string()))
                    .collect(),
            );
        }
        Ok(rows)
    }

    fn utf8(&self) -> PgWireResult<&str> {
        std::str::from_utf8(&self.data).map_err(|e| {
            pg_error(
                "22021",
                format!("COPY data is not valid UTF-8 at byte {}", e.valid_up_to()),
            )
        })
    }

    fn check_width(&self, got: usize, line: usize) -> PgWireResult<()> {
        let want = self.columns.len();
        if got == want {
            return Ok(());
        }
        let what = if got < want {
            "missing data for a column"
        } else {
            "extra data after the last expected column"
        };
        Err(pg_error(
            BAD_COPY_FILE_FORMAT,
            format!("line {line}: {what} ({got} values, {want} columns)"),
        ))
    }
}

/// A session that sees the shared tables (schema `public`) and, in a schema of its own,
/// `copy_input.data`: the COPY's rows never enter the catalog other sessions share.
fn private_session(
    engine: &Engine,
    input: Arc<dyn TableProvider>,
) -> datafusion::error::Result<SessionContext> {
    let base = engine.session();
    let state = base.state();
    let catalog_name = state.config().options().catalog.default_catalog.clone();
    let shared = base
        .catalog(&catalog_name)
        .and_then(|c| c.schema("public"))
        .ok_or_else(|| DataFusionError::Plan("the built-in tables are missing".into()))?;
    let catalog = Arc::new(MemoryCatalogProvider::new());
    catalog.register_schema("public", shared)?;
    let inputs = Arc::new(MemorySchemaProvider::new());
    inputs.register_table("data".into(), input)?;
    catalog.register_schema("copy_input", inputs)?;
    let catalogs = Arc::new(MemoryCatalogProviderList::new());
    catalogs.register_catalog(catalog_name, catalog);
    let state = SessionStateBuilder::new_from_existing(state)
        .with_catalog_list(catalogs)
        .build();
    Ok(SessionContext::new_with_state(state))
}

fn ascii(c: char, option: &str) -> PgWireResult<u8> {
    u8::try_from(c).ok().filter(u8::is_ascii).ok_or_else(|| {
        pg_error(
            FEATURE_NOT_SUPPORTED,
            format!("COPY {option} must be one ASCII character"),
        )
    })
}

/// Undo the text format's backslash escapes.
fn unescape(raw: &str) -> Result<String, String> {
    if !raw.contains('\\') {
        return Ok(raw.to_string());
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('v') => out.push('\u{b}'),
            Some(other) => out.push(other),
            None => return Err("a backslash ends the value".into()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(sql: &str, data: &str) -> CopyIn {
        let mut c = CopyIn::parse(sql)
            .expect("a COPY FROM STDIN")
            .expect("valid");
        c.add(data.as_bytes()).expect("add");
        c
    }

    #[test]
    fn only_copy_from_stdin_is_taken() {
        assert!(CopyIn::parse("SELECT 1").is_none());
        assert!(CopyIn::parse("COPY usage TO STDOUT").is_none());
        assert!(CopyIn::parse("copy budgets from stdin").is_some());
        assert!(matches!(
            CopyIn::parse("COPY nope FROM STDIN"),
            Some(Err(_))
        ));
    }

    #[test]
    fn text_format_nulls_escapes_and_end_marker() {
        let c = copy(
            "COPY budgets (budget_id, scope, scope_value) FROM STDIN",
            "b1\tteam\tsearch\nb2\tteam\t\\N\nb\\t3\tglobal\tx\\\\y\n\\.\n",
        );
        let rows = c.parse_text().expect("rows");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1][2], None);
        assert_eq!(rows[2][0].as_deref(), Some("b\t3"));
        assert_eq!(rows[2][2].as_deref(), Some("x\\y"));
    }

    #[test]
    fn csv_with_header_quotes_and_empty_as_null() {
        let c = copy(
            "COPY budgets (budget_id, scope, scope_value) FROM STDIN WITH (FORMAT csv, HEADER true)",
            "budget_id,scope,scope_value\nb1,team,\"a, b\"\nb2,global,\n",
        );
        let rows = c.parse_csv().expect("rows");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][2].as_deref(), Some("a, b"));
        assert_eq!(rows[1][2], None);
    }

    #[test]
    fn wrong_widths_name_the_line() {
        let c = copy("COPY budgets (budget_id, scope) FROM STDIN CSV", "a,b\nc\n");
        let err = format!("{:?}", c.parse_csv().expect_err("short row"));
        assert!(err.contains("line 2"), "{err}");
    }
}

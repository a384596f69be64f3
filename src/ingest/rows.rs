//! Building `usage` rows from text fields (CSV) and JSON values, with errors that name the
//! line and the column.

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, Decimal128Builder, Int32Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, SchemaRef};

use crate::schema::{self, ColumnDefault};

/// A value for one column of one row, before conversion.
#[derive(Debug, Clone, Copy)]
pub enum Field<'a> {
    Null,
    Text(&'a str),
    Int(i64),
    Float(f64),
    /// A time already converted to microseconds since the epoch (UTC), from an adapter.
    Micros(i64),
}

enum ColumnBuilder {
    Text(StringBuilder),
    Int64(Int64Builder),
    Int32(Int32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Decimal(Decimal128Builder),
}

impl ColumnBuilder {
    fn new(data_type: &DataType, capacity: usize) -> Self {
        match data_type {
            DataType::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(capacity)),
            DataType::Int32 => ColumnBuilder::Int32(Int32Builder::with_capacity(capacity)),
            DataType::Timestamp(_, _) => ColumnBuilder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("+00:00"),
            ),
            DataType::Decimal128(p, s) => ColumnBuilder::Decimal(
                Decimal128Builder::with_capacity(capacity)
                    .with_precision_and_scale(*p, *s)
                    .unwrap_or_else(|_| Decimal128Builder::with_capacity(capacity)),
            ),
            _ => ColumnBuilder::Text(StringBuilder::with_capacity(capacity, capacity * 16)),
        }
    }

    fn len(&self) -> usize {
        match self {
            ColumnBuilder::Text(b) => b.len(),
            ColumnBuilder::Int64(b) => b.len(),
            ColumnBuilder::Int32(b) => b.len(),
            ColumnBuilder::Timestamp(b) => b.len(),
            ColumnBuilder::Decimal(b) => b.len(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Text(b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(b) => Arc::new(b.finish()),
            ColumnBuilder::Int32(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b) => Arc::new(b.finish()),
            ColumnBuilder::Decimal(b) => Arc::new(b.finish()),
        }
    }
}

/// Why a field was rejected.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub column: String,
    pub reason: String,
}

impl FieldError {
    /// A problem with the record as a whole (not JSON, not an object, unreadable).
    pub fn record(reason: String) -> Self {
        FieldError {
            column: "record".into(),
            reason,
        }
    }
}

/// Accumulates rows in `usage`'s schema.
///
/// A row is converted whole into a list of values first, so a bad field leaves the builders
/// untouched and the row can be skipped.
pub struct UsageRows {
    schema: SchemaRef,
    builders: Vec<ColumnBuilder>,
    defaults: Vec<Option<ColumnDefault>>,
    nullable: Vec<bool>,
    /// Token and request counts, which cannot be negative.
    counts: Vec<bool>,
    names: Vec<String>,
    ingested_at: i64,
    source: String,
}

/// A converted value, ready to append.
#[derive(Debug, Clone)]
enum Value<'a> {
    Null,
    Text(std::borrow::Cow<'a, str>),
    Int(i64),
    Decimal(i128),
}

impl UsageRows {
    /// `ingested_at` is stamped on every row; `source` fills `usage.source` when a row has none.
    pub fn new(ingested_at: i64, source: String) -> Self {
        let schema = schema::usage_schema();
        let def = schema::table_def("usage");
        let builders = schema
            .fields()
            .iter()
            .map(|f| ColumnBuilder::new(f.data_type(), 8192))
            .collect();
        let defaults = schema
            .fields()
            .iter()
            .map(|f| def.and_then(|d| d.default_for(f.name()).cloned()))
            .collect();
        let nullable = schema.fields().iter().map(|f| f.is_nullable()).collect();
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let counts = names
            .iter()
            .map(|n| n.ends_with("_tokens") || n == "requests")
            .collect();
        UsageRows {
            schema,
            builders,
            defaults,
            nullable,
            counts,
            names,
            ingested_at,
            source,
        }
    }

    /// Index of `name` in the usage schema.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    pub fn column_names(&self) -> &[String] {
        &self.names
    }

    /// Rows buffered.
    pub fn len(&self) -> usize {
        self.builders.first().map_or(0, ColumnBuilder::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Add one row. `fields[i]` is the value for usage column `i`. `fallback_id` gives the
    /// event id when the row has none (a stable hash of the source record).
    pub fn push(
        &mut self,
        fields: &[Field<'_>],
        fallback_id: impl FnOnce() -> String,
    ) -> Result<(), FieldError> {
        let mut values: Vec<Value<'_>> = Vec::with_capacity(fields.len());
        let mut fallback_id = Some(fallback_id);
        for (i, field) in fields.iter().enumerate() {
            let name = &self.names[i];
            let value = match field {
                Field::Null => match name.as_str() {
                    "event_id" => {
                        Value::Text(fallback_id.take().map(|f| f()).unwrap_or_default().into())
                    }
                    "ingested_at" => Value::Int(self.ingested_at),
                    "source" => Value::Text(self.source.as_str().into()),
                    _ => match &self.defaults[i] {
                        Some(ColumnDefault::Int(v)) => Value::Int(*v),
                        Some(ColumnDefault::Text(v)) => Value::Text((*v).into()),
                        Some(ColumnDefault::Now) => Value::Int(self.ingested_at),
                        None if self.nullable[i] => Value::Null,
                        None => {
                            return Err(FieldError {
                                column: name.clone(),
                                reason: "a value is required".into(),
                            });
                        }
                    },
                },
                other => {
                    let value =
                        convert(self.schema.field(i).data_type(), other).map_err(|reason| {
                            FieldError {
                                column: name.clone(),
                                reason,
                            }
                        })?;
                    if self.counts[i]
                        && let Value::Int(v) = value
                        && v < 0
                    {
                        return Err(FieldError {
                            column: name.clone(),
                            reason: format!("{v} is negative"),
                        });
                    }
                    value
                }
            };
            values.push(value);
        }
        for (builder, value) in self.builders.iter_mut().zip(values) {
            append(builder, value);
        }
        Ok(())
    }

    /// Take the buffered rows as a batch.
    pub fn finish(&mut self) -> Result<RecordBatch, arrow::error::ArrowError> {
        let columns: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(ColumnBuilder::finish)
            .collect();
        RecordBatch::try_new(Arc::clone(&self.schema), columns)
    }
}

fn append(builder: &mut ColumnBuilder, value: Value<'_>) {
    match (builder, value) {
        (ColumnBuilder::Text(b), Value::Text(s)) => b.append_value(s.as_ref()),
        (ColumnBuilder::Int64(b), Value::Int(v)) => b.append_value(v),
        (ColumnBuilder::Int32(b), Value::Int(v)) => b.append_value(v as i32),
        (ColumnBuilder::Timestamp(b), Value::Int(v)) => b.append_value(v),
        (ColumnBuilder::Decimal(b), Value::Decimal(v)) => b.append_value(v),
        (ColumnBuilder::Text(b), _) => b.append_null(),
        (ColumnBuilder::Int64(b), _) => b.append_null(),
        (ColumnBuilder::Int32(b), _) => b.append_null(),
        (ColumnBuilder::Timestamp(b), _) => b.append_null(),
        (ColumnBuilder::Decimal(b), _) => b.append_null(),
    }
}

fn convert<'a>(data_type: &DataType, field: &Field<'a>) -> Result<Value<'a>, String> {
    match data_type {
        DataType::Utf8 => match field {
            Field::Text(s) => Ok(Value::Text((*s).into())),
            Field::Int(v) => Ok(Value::Text(v.to_string().into())),
            Field::Float(v) => Ok(Value::Text(v.to_string().into())),
            Field::Null => Ok(Value::Null),
            Field::Micros(_) => Err("expected text, got a time".into()),
        },
        DataType::Int64 => parse_int(field, i64::MIN, i64::MAX).map(Value::Int),
        DataType::Int32 => {
            parse_int(field, i64::from(i32::MIN), i64::from(i32::MAX)).map(Value::Int)
        }
        DataType::Timestamp(_, _) => match field {
            Field::Text(s) => parse_timestamp(s).map(Value::Int),
            Field::Micros(v) => Ok(Value::Int(*v)),
            _ => Err("expected a timestamp like 2026-10-01T12:00:00Z".into()),
        },
        DataType::Decimal128(_, scale) => {
            let text = match field {
                Field::Text(s) => s.trim().to_string(),
                Field::Int(v) => v.to_string(),
                Field::Float(v) => v.to_string(),
                Field::Null => return Ok(Value::Null),
                Field::Micros(_) => return Err("expected a decimal number, got a time".into()),
            };
            parse_decimal(&text, u32::try_from(*scale).unwrap_or(0)).map(Value::Decimal)
        }
        other => Err(format!("unsupported column type {other}")),
    }
}

fn parse_int(field: &Field<'_>, min: i64, max: i64) -> Result<i64, String> {
    let v = match field {
        Field::Int(v) => *v,
        Field::Text(s) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("expected an integer, got {:?}", truncate(s)))?,
        Field::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => *f as i64,
        Field::Float(f) => return Err(format!("expected an integer, got {f}")),
        Field::Null => return Err("a value is required".into()),
        Field::Micros(_) => return Err("expected an integer, got a time".into()),
    };
    if v < min || v > max {
        return Err(format!("{v} is out of range"));
    }
    Ok(v)
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Exact decimal text to a `scale`-digit fixed-point i128.
pub fn parse_decimal(text: &str, scale: u32) -> Result<i128, String> {
    let d: rust_decimal::Decimal = text
        .parse()
        .or_else(|_| rust_decimal::Decimal::from_scientific(text))
        .map_err(|_| format!("expected a decimal number, got {:?}", truncate(text)))?;
    if d.scale() > scale {
        return Err(format!("{text} has more than {scale} decimal places"));
    }
    let mut d = d;
    d.rescale(scale);
    if d.scale() != scale {
        return Err(format!("{text} is too large"));
    }
    Ok(d.mantissa())
}

/// RFC 3339, or `YYYY-MM-DD[ T]HH:MM:SS[.ffffff]` taken as UTC, or a bare date, to microseconds.
pub fn parse_timestamp(text: &str) -> Result<i64, String> {
    let t = text.trim();
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(dt.timestamp_micros());
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%#z"] {
        if let Ok(dt) = chrono::DateTime::parse_from_str(t, format) {
            return Ok(dt.timestamp_micros());
        }
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(t, format) {
            return Ok(dt.and_utc().timestamp_micros());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
        && let Some(dt) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(dt.and_utc().timestamp_micros());
    }
    Err(format!(
        "expected a timestamp like 2026-10-01T12:00:00Z, got {:?}",
        truncate(t)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_accept_common_forms_as_utc() {
        let a = parse_timestamp("2026-10-01T12:00:00Z").expect("rfc3339");
        assert_eq!(parse_timestamp("2026-10-01 12:00:00").expect("naive"), a);
        assert_eq!(
            parse_timestamp("2026-10-01T14:00:00+02:00").expect("offset"),
            a
        );
        assert_eq!(parse_timestamp("2026-10-01 12:00:00+00").expect("pg"), a);
        assert!(parse_timestamp("yesterday").is_err());
    }

    #[test]
    fn decimals_are_exact_and_bounded_by_scale() {
        assert_eq!(parse_decimal("0.1", 12).expect("dec"), 100_000_000_000);
        assert_eq!(parse_decimal("12", 2).expect("dec"), 1200);
        assert!(parse_decimal("0.0000000000001", 12).is_err());
        assert!(parse_decimal("abc", 12).is_err());
    }

    #[test]
    fn a_bad_field_leaves_no_partial_row() {
        let mut rows = UsageRows::new(0, "test".into());
        let n = rows.column_names().len();
        let mut fields = vec![Field::Null; n];
        fields[0] = Field::Text("e1");
        fields[1] = Field::Text("2026-10-01T00:00:00Z");
        fields[2] = Field::Text("openai");
        fields[3] = Field::Text("gpt-4o");
        fields[4] = Field::Text("ten");
        fields[8] = Field::Int(5);
        let err = rows.push(&fields, String::new).expect_err("bad");
        assert_eq!(err.column, "input_tokens");
        assert_eq!(rows.len(), 0);
        fields[4] = Field::Int(10);
        rows.push(&fields, String::new).expect("good");
        let batch = rows.finish().expect("batch");
        assert_eq!(batch.num_rows(), 1);
    }

    #[test]
    fn negative_counts_are_refused() {
        let mut rows = UsageRows::new(0, "test".into());
        let mut fields = vec![Field::Null; rows.column_names().len()];
        fields[1] = Field::Micros(0);
        fields[2] = Field::Text("openai");
        fields[3] = Field::Text("gpt-4o");
        fields[4] = Field::Int(-5);
        fields[8] = Field::Int(5);
        let err = rows.push(&fields, || "id".into()).expect_err("negative");
        assert_eq!(err.column, "input_tokens");
        assert_eq!(rows.len(), 0);
    }

    #[test]
    fn missing_required_value_names_the_column() {
        let mut rows = UsageRows::new(0, "test".into());
        let fields = vec![Field::Null; rows.column_names().len()];
        let err = rows.push(&fields, || "id".into()).expect_err("bad");
        assert_eq!(err.column, "ts");
    }
}

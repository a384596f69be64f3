//! Arrow → PostgreSQL: column types and value encodings (text and binary).
//!
//! The encoders are written by hand rather than through `ToSql` so that every
//! Arrow type has exactly one PostgreSQL spelling: decimals keep their scale
//! (`12.500000000000`, never a float round trip), timestamps look like
//! PostgreSQL's ISO output with `TimeZone = UTC`, lists are `{a,b}` and
//! structs are `(a,b)`. A type without a natural PostgreSQL counterpart is
//! described as `text` and sent as its text form in both formats, so a client
//! never receives bytes it cannot decode.

use std::fmt::Write as _;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal32Type, Decimal64Type, Decimal128Type, Decimal256Type,
    DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType, DurationSecondType,
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    IntervalDayTimeType, IntervalMonthDayNanoType, IntervalUnit, IntervalYearMonthType,
    Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::error::{DataFusionError, Result};
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::messages::data::DataRow;

/// Microseconds between 1970-01-01 and PostgreSQL's epoch 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days between 1970-01-01 and 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
/// Days from 0001-01-01 (CE day 1) to 1970-01-01.
const UNIX_EPOCH_CE_DAYS: i32 = 719_163;
const MICROS_PER_SEC: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SEC;

/// The PostgreSQL type a column of `dt` is described as.
pub(crate) fn pg_type(dt: &DataType) -> Type {
    match dt {
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        DataType::Int64 | DataType::UInt32 => Type::INT8,
        DataType::UInt64
        | DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => Type::NUMERIC,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Type::TEXT,
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => Type::BYTEA,
        DataType::Date32 | DataType::Date64 => Type::DATE,
        DataType::Time32(_) | DataType::Time64(_) => Type::TIME,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        DataType::Interval(_) | DataType::Duration(_) => Type::INTERVAL,
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::FixedSizeList(f, _)
        | DataType::ListView(f)
        | DataType::LargeListView(f) => {
            array_type_of(&pg_type(f.data_type())).unwrap_or(Type::TEXT)
        }
        DataType::Struct(_) => Type::RECORD,
        DataType::Dictionary(_, value) => pg_type(value),
        _ => Type::TEXT,
    }
}

/// The one-dimensional array type of an element type; `None` for arrays of
/// arrays, which PostgreSQL has no type for (they fall back to `text`).
fn array_type_of(elem: &Type) -> Option<Type> {
    Some(match *elem {
        Type::BOOL => Type::BOOL_ARRAY,
        Type::INT2 => Type::INT2_ARRAY,
        Type::INT4 => Type::INT4_ARRAY,
        Type::INT8 => Type::INT8_ARRAY,
        Type::NUMERIC => Type::NUMERIC_ARRAY,
        Type::FLOAT4 => Type::FLOAT4_ARRAY,
        Type::FLOAT8 => Type::FLOAT8_ARRAY,
        Type::TEXT => Type::TEXT_ARRAY,
        Type::BYTEA => Type::BYTEA_ARRAY,
        Type::DATE => Type::DATE_ARRAY,
        Type::TIME => Type::TIME_ARRAY,
        Type::TIMESTAMP => Type::TIMESTAMP_ARRAY,
        Type::TIMESTAMPTZ => Type::TIMESTAMPTZ_ARRAY,
        Type::INTERVAL => Type::INTERVAL_ARRAY,
        Type::RECORD => Type::RECORD_ARRAY,
        _ => return None,
    })
}

/// `pg_type.typlen`, sent in RowDescription.
fn type_size(t: &Type) -> i16 {
    match *t {
        Type::BOOL => 1,
        Type::INT2 => 2,
        Type::INT4 | Type::FLOAT4 | Type::DATE => 4,
        Type::INT8 | Type::FLOAT8 | Type::TIME | Type::TIMESTAMP | Type::TIMESTAMPTZ => 8,
        Type::INTERVAL => 16,
        _ => -1,
    }
}

/// `atttypmod` for `numeric(p, s)`, which clients use for display scale.
fn type_modifier(dt: &DataType) -> i32 {
    match dt {
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s)
            if *s >= 0 =>
        {
            ((i32::from(*p) << 16) | i32::from(*s)) + 4
        }
        DataType::Dictionary(_, v) => type_modifier(v),
        _ => -1,
    }
}

/// RowDescription entry for one result column.
pub fn field_info(name: &str, dt: &DataType, format: FieldFormat) -> FieldInfo {
    let t = pg_type(dt);
    let size = type_size(&t);
    FieldInfo::new(name.to_owned(), None, None, t, format)
        .with_type_size(size)
        .with_type_modifier(type_modifier(dt))
}

/// RowDescription for a result schema, honouring the client's requested formats.
pub fn field_infos<'a>(
    columns: impl IntoIterator<Item = (&'a str, &'a DataType)>,
    format: &Format,
) -> Vec<FieldInfo> {
    columns
        .into_iter()
        .enumerate()
        .map(|(i, (name, dt))| field_info(name, dt, format.format_for(i)))
        .collect()
}

/// Encodes record batches into DataRows, one batch at a time.
pub struct RowEncoder {
    formats: Arc<[FieldFormat]>,
    /// Types the client was told about (Describe); batch columns whose
    /// PostgreSQL type differs are cast to these before encoding.
    expected: Option<Arc<[DataType]>>,
    text: String,
}

impl RowEncoder {
    pub fn new(formats: Arc<[FieldFormat]>, expected: Option<Arc<[DataType]>>) -> Self {
        Self {
            formats,
            expected,
            text: String::new(),
        }
    }

    /// All rows of `batch`. Values are written into one buffer that is split
    /// per row, so a batch costs one allocation, not one per value.
    pub fn encode(&mut self, batch: &RecordBatch) -> Result<Vec<DataRow>> {
        let columns = batch
            .columns()
            .iter()
            .enumerate()
            .map(|(i, c)| self.prepare_column(i, c))
            .collect::<Result<Vec<_>>>()?;
        let field_count = i16::try_from(columns.len())
            .map_err(|_| DataFusionError::Execution("too many result columns".into()))?;
        let mut buf = BytesMut::with_capacity(batch.num_rows() * (8 + columns.len() * 12));
        let mut rows = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            for (i, col) in columns.iter().enumerate() {
                let format = self.formats.get(i).copied().unwrap_or(FieldFormat::Text);
                self.encode_value(col.as_ref(), row, format, &mut buf)?;
            }
            rows.push(DataRow::new(buf.split(), field_count));
        }
        Ok(rows)
    }

    /// Flattens dictionaries (so the value type drives the encoding) and
    /// applies the cast to the described type, if any.
    fn prepare_column(&self, i: usize, col: &ArrayRef) -> Result<ArrayRef> {
        let mut col = Arc::clone(col);
        if let DataType::Dictionary(_, value) = col.data_type() {
            col = cast(&col, value)?;
        }
        if let Some(expected) = self.expected.as_ref().and_then(|e| e.get(i))
            && pg_type(col.data_type()) != pg_type(expected)
        {
            col = cast(&col, expected)?;
        }
        Ok(col)
    }

    fn encode_value(
        &mut self,
        col: &dyn Array,
        row: usize,
        format: FieldFormat,
        buf: &mut BytesMut,
    ) -> Result<()> {
        if is_null(col, row) {
            buf.put_i32(-1);
            return Ok(());
        }
        match format {
            FieldFormat::Text => {
                self.text.clear();
                write_text(col, row, &mut self.text)?;
                put_bytes(buf, self.text.as_bytes())
            }
            FieldFormat::Binary => with_length(buf, |buf| write_binary(col, row, buf)),
        }
    }
}

/// `Array::is_null` is false for every slot of a `NullArray` (it has no
/// validity buffer), so the type is checked too.
fn is_null(array: &dyn Array, row: usize) -> bool {
    matches!(array.data_type(), DataType::Null) || array.is_null(row)
}

fn put_bytes(buf: &mut BytesMut, bytes: &[u8]) -> Result<()> {
    let len = i32::try_from(bytes.len())
        .map_err(|_| DataFusionError::Execution("value too large to send".into()))?;
    buf.put_i32(len);
    buf.put_slice(bytes);
    Ok(())
}

/// Writes a 4-byte length placeholder, the value, then patches the length.
fn with_length(buf: &mut BytesMut, f: impl FnOnce(&mut BytesMut) -> Result<()>) -> Result<()> {
    let at = buf.len();
    buf.put_i32(0);
    f(buf)?;
    let len = i32::try_from(buf.len() - at - 4)
        .map_err(|_| DataFusionError::Execution("value too large to send".into()))?;
    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

fn mismatch(dt: &DataType) -> DataFusionError {
    DataFusionError::Internal(format!("array does not match its data type {dt}"))
}

macro_rules! prim {
    ($array:expr, $t:ty) => {
        $array
            .as_primitive_opt::<$t>()
            .ok_or_else(|| mismatch($array.data_type()))?
    };
}

macro_rules! opt {
    ($array:expr, $method:ident) => {
        $array
            .$method()
            .ok_or_else(|| mismatch($array.data_type()))?
    };
    ($array:expr, $method:ident :: < $t:ty >) => {
        $array
            .$method::<$t>()
            .ok_or_else(|| mismatch($array.data_type()))?
    };
}

/// PostgreSQL text form of the (non-null) value at `row`.
pub fn write_text(array: &dyn Array, row: usize, out: &mut String) -> Result<()> {
    let dt = array.data_type();
    match dt {
        DataType::Boolean => out.push(if opt!(array, as_boolean_opt).value(row) {
            't'
        } else {
            'f'
        }),
        DataType::Int8 => push_display(out, prim!(array, Int8Type).value(row)),
        DataType::Int16 => push_display(out, prim!(array, Int16Type).value(row)),
        DataType::Int32 => push_display(out, prim!(array, Int32Type).value(row)),
        DataType::Int64 => push_display(out, prim!(array, Int64Type).value(row)),
        DataType::UInt8 => push_display(out, prim!(array, UInt8Type).value(row)),
        DataType::UInt16 => push_display(out, prim!(array, UInt16Type).value(row)),
        DataType::UInt32 => push_display(out, prim!(array, UInt32Type).value(row)),
        DataType::UInt64 => push_display(out, prim!(array, UInt64Type).value(row)),
        DataType::Float16 => float4_text(prim!(array, Float16Type).value(row).to_f32(), out),
        DataType::Float32 => float4_text(prim!(array, Float32Type).value(row), out),
        DataType::Float64 => float8_text(prim!(array, Float64Type).value(row), out),
        DataType::Decimal32(_, s) => {
            decimal_text(&prim!(array, Decimal32Type).value(row).to_string(), *s, out)
        }
        DataType::Decimal64(_, s) => {
            decimal_text(&prim!(array, Decimal64Type).value(row).to_string(), *s, out)
        }
        DataType::Decimal128(_, s) => decimal_text(
            &prim!(array, Decimal128Type).value(row).to_string(),
            *s,
            out,
        ),
        DataType::Decimal256(_, s) => decimal_text(
            &prim!(array, Decimal256Type).value(row).to_string(),
            *s,
            out,
        ),
        DataType::Utf8 => out.push_str(opt!(array, as_string_opt::<i32>).value(row)),
        DataType::LargeUtf8 => out.push_str(opt!(array, as_string_opt::<i64>).value(row)),
        DataType::Utf8View => out.push_str(opt!(array, as_string_view_opt).value(row)),
        DataType::Binary => bytea_text(opt!(array, as_binary_opt::<i32>).value(row), out),
        DataType::LargeBinary => bytea_text(opt!(array, as_binary_opt::<i64>).value(row), out),
        DataType::BinaryView => bytea_text(opt!(array, as_binary_view_opt).value(row), out),
        DataType::FixedSizeBinary(_) => {
            bytea_text(opt!(array, as_fixed_size_binary_opt).value(row), out)
        }
        DataType::Date32 => date_text(prim!(array, Date32Type).value(row), out)?,
        DataType::Date64 => date_text(date64_days(prim!(array, Date64Type).value(row))?, out)?,
        DataType::Time32(_) | DataType::Time64(_) => time_text(time_micros(array, row)?, out),
        DataType::Timestamp(unit, tz) => {
            let micros = timestamp_micros(array, *unit, row)?;
            timestamp_text(micros, tz.is_some(), out)?
        }
        DataType::Interval(_) | DataType::Duration(_) => {
            let (months, days, micros) = interval_parts(array, row)?;
            interval_text(months, days, micros, out)
        }
        DataType::List(_) => array_text(opt!(array, as_list_opt::<i32>).value(row).as_ref(), out)?,
        DataType::LargeList(_) => {
            array_text(opt!(array, as_list_opt::<i64>).value(row).as_ref(), out)?
        }
        DataType::ListView(_) => array_text(
            opt!(array, as_list_view_opt::<i32>).value(row).as_ref(),
            out,
        )?,
        DataType::LargeListView(_) => array_text(
            opt!(array, as_list_view_opt::<i64>).value(row).as_ref(),
            out,
        )?,
        DataType::FixedSizeList(..) => {
            array_text(opt!(array, as_fixed_size_list_opt).value(row).as_ref(), out)?
        }
        DataType::Struct(_) => record_text(array, row, out)?,
        DataType::Dictionary(..) => {
            let dict = opt!(array, as_any_dictionary_opt);
            let key = dict
                .normalized_keys()
                .get(row)
                .copied()
                .ok_or_else(|| mismatch(dt))?;
            write_text(dict.values().as_ref(), key, out)?
        }
        DataType::Null => {}
        _ => {
            let formatter = ArrayFormatter::try_new(array, &FormatOptions::default())?;
            write!(out, "{}", formatter.value(row))
                .map_err(|e| DataFusionError::Execution(e.to_string()))?;
        }
    }
    Ok(())
}

fn push_display(out: &mut String, v: impl std::fmt::Display) {
    // Writing to a String cannot fail.
    let _ = write!(out, "{v}");
}

/// `{a,b}` with PostgreSQL's element quoting; nested lists are not quoted.
fn array_text(values: &dyn Array, out: &mut String) -> Result<()> {
    out.push('{');
    let nested = matches!(
        values.data_type(),
        DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(..)
            | DataType::ListView(_)
            | DataType::LargeListView(_)
    );
    let mut elem = String::new();
    for i in 0..values.len() {
        if i > 0 {
            out.push(',');
        }
        if is_null(values, i) {
            out.push_str("NULL");
        } else if nested {
            write_text(values, i, out)?;
        } else {
            elem.clear();
            write_text(values, i, &mut elem)?;
            quote_array_element(&elem, out);
        }
    }
    out.push('}');
    Ok(())
}

fn quote_array_element(s: &str, out: &mut String) {
    let needs_quotes = s.is_empty()
        || s.eq_ignore_ascii_case("NULL")
        || s.chars().any(|c| {
            matches!(c, '{' | '}' | ',' | '"' | '\\')
                || matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
        });
    if !needs_quotes {
        out.push_str(s);
        return;
    }
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// `(a,b)` with PostgreSQL's record quoting; NULL fields are empty.
fn record_text(array: &dyn Array, row: usize, out: &mut String) -> Result<()> {
    let st = opt!(array, as_struct_opt);
    out.push('(');
    let mut field = String::new();
    for (i, col) in st.columns().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if is_null(col.as_ref(), row) {
            continue;
        }
        field.clear();
        write_text(col.as_ref(), row, &mut field)?;
        let needs_quotes = field.is_empty()
            || field
                .chars()
                .any(|c| matches!(c, '(' | ')' | ',' | '"' | '\\') || c.is_ascii_whitespace());
        if needs_quotes {
            out.push('"');
            for c in field.chars() {
                if c == '"' || c == '\\' {
                    out.push(c);
                }
                out.push(c);
            }
            out.push('"');
        } else {
            out.push_str(&field);
        }
    }
    out.push(')');
    Ok(())
}

fn bytea_text(bytes: &[u8], out: &mut String) {
    out.reserve(2 + bytes.len() * 2);
    out.push_str("\\x");
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

/// Exact decimal text from the unscaled integer's digits: `12500…`, scale 12
/// → `12.500000000000`. A negative scale appends zeros.
pub fn decimal_text(unscaled: &str, scale: i8, out: &mut String) {
    let (negative, digits) = match unscaled.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, unscaled),
    };
    if negative && digits.bytes().any(|b| b != b'0') {
        out.push('-');
    }
    if scale <= 0 {
        out.push_str(digits);
        if digits != "0" {
            for _ in 0..scale.unsigned_abs() {
                out.push('0');
            }
        }
        return;
    }
    let scale = usize::from(scale.unsigned_abs());
    if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else {
        out.push_str("0.");
        for _ in 0..scale - digits.len() {
            out.push('0');
        }
        out.push_str(digits);
    }
}

/// PostgreSQL's float8 output (shortest round-trip digits, exponent form
/// outside 1e-4 ≤ |v| < 1e15).
pub fn float8_text(v: f64, out: &mut String) {
    float_text(
        v.is_nan(),
        v.is_infinite(),
        v.is_sign_negative(),
        format!("{v:e}"),
        15,
        out,
        || format!("{v}"),
    )
}

/// PostgreSQL's float4 output (exponent form outside 1e-4 ≤ |v| < 1e6).
pub fn float4_text(v: f32, out: &mut String) {
    float_text(
        v.is_nan(),
        v.is_infinite(),
        v.is_sign_negative(),
        format!("{v:e}"),
        6,
        out,
        || format!("{v}"),
    )
}

fn float_text(
    nan: bool,
    infinite: bool,
    negative: bool,
    sci: String,
    max_exp: i32,
    out: &mut String,
    fixed: impl FnOnce() -> String,
) {
    if nan {
        out.push_str("NaN");
        return;
    }
    if infinite {
        out.push_str(if negative { "-Infinity" } else { "Infinity" });
        return;
    }
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..max_exp).contains(&exp) || mantissa.trim_start_matches('-') == "0" {
        out.push_str(&fixed());
    } else {
        let _ = write!(
            out,
            "{mantissa}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
    }
}

fn date64_days(ms: i64) -> Result<i32> {
    i32::try_from(ms.div_euclid(86_400_000)).map_err(|_| out_of_range("date"))
}

fn out_of_range(what: &str) -> DataFusionError {
    DataFusionError::Execution(format!("{what} out of range"))
}

fn naive_date(days_since_epoch: i32) -> Result<NaiveDate> {
    days_since_epoch
        .checked_add(UNIX_EPOCH_CE_DAYS)
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .ok_or_else(|| out_of_range("date"))
}

/// `YYYY-MM-DD`, with PostgreSQL's ` BC` suffix for years before 1.
fn push_date(date: NaiveDate, out: &mut String) -> bool {
    let year = date.year();
    let (year, bc) = if year <= 0 {
        (1 - year, true)
    } else {
        (year, false)
    };
    let _ = write!(out, "{year:04}-{:02}-{:02}", date.month(), date.day());
    bc
}

fn date_text(days: i32, out: &mut String) -> Result<()> {
    if push_date(naive_date(days)?, out) {
        out.push_str(" BC");
    }
    Ok(())
}

/// `.ffffff` with trailing zeros trimmed, nothing when zero (as PostgreSQL).
fn push_fraction(micros: u32, out: &mut String) {
    if micros == 0 {
        return;
    }
    let mut s = format!("{micros:06}");
    while s.ends_with('0') {
        s.pop();
    }
    out.push('.');
    out.push_str(&s);
}

fn timestamp_to_naive(micros: i64) -> Result<NaiveDateTime> {
    let secs = micros.div_euclid(MICROS_PER_SEC);
    let sub = micros.rem_euclid(MICROS_PER_SEC);
    u32::try_from(sub * 1000)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(secs, nanos))
        .map(|dt| dt.naive_utc())
        .ok_or_else(|| out_of_range("timestamp"))
}

/// `2026-10-01 12:00:00[.ffffff][+00][ BC]`; `TimeZone` is always UTC.
pub fn timestamp_text(micros: i64, with_tz: bool, out: &mut String) -> Result<()> {
    let ts = timestamp_to_naive(micros)?;
    let bc = push_date(ts.date(), out);
    let _ = write!(
        out,
        " {:02}:{:02}:{:02}",
        ts.hour(),
        ts.minute(),
        ts.second()
    );
    push_fraction(ts.nanosecond() / 1000, out);
    if with_tz {
        out.push_str("+00");
    }
    if bc {
        out.push_str(" BC");
    }
    Ok(())
}

fn time_text(micros: i64, out: &mut String) {
    let micros = micros.rem_euclid(MICROS_PER_DAY + 1);
    let secs = micros / MICROS_PER_SEC;
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    push_fraction((micros % MICROS_PER_SEC) as u32, out);
}

/// PostgreSQL `IntervalStyle = postgres` output, e.g. `1 year 2 mons 3 days 04:05:06.5`.
pub fn interval_text(months: i32, days: i32, micros: i64, out: &mut String) {
    let mut is_zero = true;
    let mut is_before = false;
    let mut part = |value: i64, unit: &str, out: &mut String| {
        if value == 0 {
            return;
        }
        if !is_zero {
            out.push(' ');
        }
        if is_before && value > 0 {
            out.push('+');
        }
        let _ = write!(out, "{value} {unit}{}", if value != 1 { "s" } else { "" });
        is_before = value < 0;
        is_zero = false;
    };
    part(i64::from(months / 12), "year", out);
    part(i64::from(months % 12), "mon", out);
    part(i64::from(days), "day", out);
    if is_zero || micros != 0 {
        let abs = micros.unsigned_abs();
        let hours = abs / 3_600_000_000;
        let minutes = abs / 60_000_000 % 60;
        let seconds = abs / 1_000_000 % 60;
        if !is_zero {
            out.push(' ');
        }
        if micros < 0 {
            out.push('-');
        } else if is_before {
            out.push('+');
        }
        let _ = write!(out, "{hours:02}:{minutes:02}:{seconds:02}");
        push_fraction((abs % 1_000_000) as u32, out);
    }
}

fn timestamp_micros(array: &dyn Array, unit: TimeUnit, row: usize) -> Result<i64> {
    Ok(match unit {
        TimeUnit::Second => prim!(array, TimestampSecondType)
            .value(row)
            .checked_mul(MICROS_PER_SEC)
            .ok_or_else(|| out_of_range("timestamp"))?,
        TimeUnit::Millisecond => prim!(array, TimestampMillisecondType)
            .value(row)
            .checked_mul(1000)
            .ok_or_else(|| out_of_range("timestamp"))?,
        TimeUnit::Microsecond => prim!(array, TimestampMicrosecondType).value(row),
        TimeUnit::Nanosecond => prim!(array, TimestampNanosecondType)
            .value(row)
            .div_euclid(1000),
    })
}

fn time_micros(array: &dyn Array, row: usize) -> Result<i64> {
    Ok(match array.data_type() {
        DataType::Time32(TimeUnit::Second) => {
            i64::from(prim!(array, Time32SecondType).value(row)) * MICROS_PER_SEC
        }
        DataType::Time32(_) => i64::from(prim!(array, Time32MillisecondType).value(row)) * 1000,
        DataType::Time64(TimeUnit::Nanosecond) => {
            prim!(array, Time64NanosecondType).value(row) / 1000
        }
        _ => prim!(array, Time64MicrosecondType).value(row),
    })
}

/// (months, days, microseconds) of an interval or duration value.
fn interval_parts(array: &dyn Array, row: usize) -> Result<(i32, i32, i64)> {
    Ok(match array.data_type() {
        DataType::Interval(IntervalUnit::YearMonth) => {
            (prim!(array, IntervalYearMonthType).value(row), 0, 0)
        }
        DataType::Interval(IntervalUnit::DayTime) => {
            let v = prim!(array, IntervalDayTimeType).value(row);
            (0, v.days, i64::from(v.milliseconds) * 1000)
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let v = prim!(array, IntervalMonthDayNanoType).value(row);
            (v.months, v.days, v.nanoseconds / 1000)
        }
        DataType::Duration(TimeUnit::Second) => (
            0,
            0,
            prim!(array, DurationSecondType)
                .value(row)
                .checked_mul(MICROS_PER_SEC)
                .ok_or_else(|| out_of_range("interval"))?,
        ),
        DataType::Duration(TimeUnit::Millisecond) => (
            0,
            0,
            prim!(array, DurationMillisecondType)
                .value(row)
                .checked_mul(1000)
                .ok_or_else(|| out_of_range("interval"))?,
        ),
        DataType::Duration(TimeUnit::Microsecond) => {
            (0, 0, prim!(array, DurationMicrosecondType).value(row))
        }
        DataType::Duration(TimeUnit::Nanosecond) => {
            (0, 0, prim!(array, DurationNanosecondType).value(row) / 1000)
        }
        other => return Err(mismatch(other)),
    })
}

/// PostgreSQL binary form of the (non-null) value at `row`, consistent with
/// [`pg_type`]: types described as `text` are sent as their text form.
pub fn write_binary(array: &dyn Array, row: usize, out: &mut BytesMut) -> Result<()> {
    let dt = array.data_type();
    match dt {
        DataType::Boolean => out.put_u8(u8::from(opt!(array, as_boolean_opt).value(row))),
        DataType::Int8 => out.put_i16(i16::from(prim!(array, Int8Type).value(row))),
        DataType::Int16 => out.put_i16(prim!(array, Int16Type).value(row)),
        DataType::UInt8 => out.put_i16(i16::from(prim!(array, UInt8Type).value(row))),
        DataType::Int32 => out.put_i32(prim!(array, Int32Type).value(row)),
        DataType::UInt16 => out.put_i32(i32::from(prim!(array, UInt16Type).value(row))),
        DataType::Int64 => out.put_i64(prim!(array, Int64Type).value(row)),
        DataType::UInt32 => out.put_i64(i64::from(prim!(array, UInt32Type).value(row))),
        DataType::UInt64 => {
            numeric_binary(&prim!(array, UInt64Type).value(row).to_string(), 0, out)
        }
        DataType::Float16 => out.put_f32(prim!(array, Float16Type).value(row).to_f32()),
        DataType::Float32 => out.put_f32(prim!(array, Float32Type).value(row)),
        DataType::Float64 => out.put_f64(prim!(array, Float64Type).value(row)),
        DataType::Decimal32(_, s) => {
            numeric_binary(&prim!(array, Decimal32Type).value(row).to_string(), *s, out)
        }
        DataType::Decimal64(_, s) => {
            numeric_binary(&prim!(array, Decimal64Type).value(row).to_string(), *s, out)
        }
        DataType::Decimal128(_, s) => numeric_binary(
            &prim!(array, Decimal128Type).value(row).to_string(),
            *s,
            out,
        ),
        DataType::Decimal256(_, s) => numeric_binary(
            &prim!(array, Decimal256Type).value(row).to_string(),
            *s,
            out,
        ),
        DataType::Utf8 => out.put_slice(opt!(array, as_string_opt::<i32>).value(row).as_bytes()),
        DataType::LargeUtf8 => {
            out.put_slice(opt!(array, as_string_opt::<i64>).value(row).as_bytes())
        }
        DataType::Utf8View => out.put_slice(opt!(array, as_string_view_opt).value(row).as_bytes()),
        DataType::Binary => out.put_slice(opt!(array, as_binary_opt::<i32>).value(row)),
        DataType::LargeBinary => out.put_slice(opt!(array, as_binary_opt::<i64>).value(row)),
        DataType::BinaryView => out.put_slice(opt!(array, as_binary_view_opt).value(row)),
        DataType::FixedSizeBinary(_) => {
            out.put_slice(opt!(array, as_fixed_size_binary_opt).value(row))
        }
        DataType::Date32 => out.put_i32(pg_days(prim!(array, Date32Type).value(row))?),
        DataType::Date64 => {
            out.put_i32(pg_days(date64_days(prim!(array, Date64Type).value(row))?)?)
        }
        DataType::Time32(_) | DataType::Time64(_) => out.put_i64(time_micros(array, row)?),
        DataType::Timestamp(unit, _) => {
            let micros = timestamp_micros(array, *unit, row)?;
            out.put_i64(
                micros
                    .checked_sub(PG_EPOCH_MICROS)
                    .ok_or_else(|| out_of_range("timestamp"))?,
            )
        }
        DataType::Interval(_) | DataType::Duration(_) => {
            let (months, days, micros) = interval_parts(array, row)?;
            out.put_i64(micros);
            out.put_i32(days);
            out.put_i32(months);
        }
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::ListView(_)
        | DataType::LargeListView(_)
        | DataType::FixedSizeList(..)
            if pg_type(dt) != Type::TEXT =>
        {
            let values = match dt {
                DataType::List(_) => opt!(array, as_list_opt::<i32>).value(row),
                DataType::LargeList(_) => opt!(array, as_list_opt::<i64>).value(row),
                DataType::ListView(_) => opt!(array, as_list_view_opt::<i32>).value(row),
                DataType::LargeListView(_) => opt!(array, as_list_view_opt::<i64>).value(row),
                _ => opt!(array, as_fixed_size_list_opt).value(row),
            };
            array_binary(values.as_ref(), out)?
        }
        DataType::Struct(_) => record_binary(array, row, out)?,
        DataType::Dictionary(..) => {
            let dict = opt!(array, as_any_dictionary_opt);
            let key = dict
                .normalized_keys()
                .get(row)
                .copied()
                .ok_or_else(|| mismatch(dt))?;
            write_binary(dict.values().as_ref(), key, out)?
        }
        _ => {
            let mut text = String::new();
            write_text(array, row, &mut text)?;
            out.put_slice(text.as_bytes());
        }
    }
    Ok(())
}

fn pg_days(days_since_unix_epoch: i32) -> Result<i32> {
    days_since_unix_epoch
        .checked_sub(PG_EPOCH_DAYS)
        .ok_or_else(|| out_of_range("date"))
}

/// One-dimensional array: ndim, has-null flag, element oid, length, lower
/// bound 1, then length-prefixed elements.
fn array_binary(values: &dyn Array, out: &mut BytesMut) -> Result<()> {
    let len = i32::try_from(values.len()).map_err(|_| out_of_range("array length"))?;
    out.put_i32(i32::from(len > 0));
    out.put_i32(i32::from((0..values.len()).any(|i| is_null(values, i))));
    out.put_u32(pg_type(values.data_type()).oid());
    if len > 0 {
        out.put_i32(len);
        out.put_i32(1);
    }
    for i in 0..values.len() {
        if is_null(values, i) {
            out.put_i32(-1);
        } else {
            with_length(out, |out| write_binary(values, i, out))?;
        }
    }
    Ok(())
}

/// Record: field count, then per field its oid and length-prefixed value.
fn record_binary(array: &dyn Array, row: usize, out: &mut BytesMut) -> Result<()> {
    let st = opt!(array, as_struct_opt);
    let n = i32::try_from(st.num_columns()).map_err(|_| out_of_range("record width"))?;
    out.put_i32(n);
    for col in st.columns() {
        out.put_u32(pg_type(col.data_type()).oid());
        if is_null(col.as_ref(), row) {
            out.put_i32(-1);
        } else {
            with_length(out, |out| write_binary(col.as_ref(), row, out))?;
        }
    }
    Ok(())
}

/// PostgreSQL binary `numeric` from the unscaled integer's decimal digits:
/// ndigits, weight, sign, dscale, then base-10000 digits. Exact for any
/// precision, including Decimal256.
pub fn numeric_binary(unscaled: &str, scale: i8, out: &mut BytesMut) {
    let (negative, digits) = match unscaled.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, unscaled),
    };
    // Normalise to a non-negative scale by appending zeros.
    let padded: String;
    let (digits, scale) = if scale < 0 {
        padded = format!("{digits}{}", "0".repeat(usize::from(scale.unsigned_abs())));
        (padded.as_str(), 0usize)
    } else {
        (digits, usize::from(scale.unsigned_abs()))
    };
    let (int_part, frac_part) = if digits.len() > scale {
        digits.split_at(digits.len() - scale)
    } else {
        ("", digits)
    };
    // Left-pad the integer part and right-pad the fraction to whole groups.
    let frac_padded_left = scale - frac_part.len();
    let int_pad = (4 - int_part.len() % 4) % 4;
    let mut groups: Vec<i16> = Vec::new();
    let int_digits: Vec<u8> = std::iter::repeat_n(0u8, int_pad)
        .chain(int_part.bytes().map(|b| b.wrapping_sub(b'0')))
        .collect();
    for chunk in int_digits.chunks(4) {
        groups.push(group_value(chunk));
    }
    let int_groups = groups.len();
    let frac_digits: Vec<u8> = std::iter::repeat_n(0u8, frac_padded_left)
        .chain(frac_part.bytes().map(|b| b.wrapping_sub(b'0')))
        .collect();
    for chunk in frac_digits.chunks(4) {
        let mut g = [0u8; 4];
        g[..chunk.len()].copy_from_slice(chunk);
        groups.push(group_value(&g));
    }
    let mut weight = int_groups as i32 - 1;
    // Strip leading zero groups (each lowers the weight) and trailing ones.
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= leading as i32;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    let (weight, sign) = if groups.is_empty() {
        (0, 0x0000)
    } else {
        (weight, if negative { 0x4000 } else { 0x0000 })
    };
    out.put_i16(groups.len() as i16);
    out.put_i16(weight as i16);
    out.put_u16(sign);
    out.put_u16(scale as u16);
    for g in groups {
        out.put_i16(g);
    }
}

fn group_value(chunk: &[u8]) -> i16 {
    chunk.iter().fold(0i16, |acc, d| acc * 10 + i16::from(*d))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
        Int32Array, Int64Array, IntervalMonthDayNanoArray, ListArray, StringArray, StructArray,
        TimestampMicrosecondArray, TimestampNanosecondArray,
    };
    use datafusion::arrow::datatypes::{Field, Fields, IntervalMonthDayNano, Schema};

    use super::*;

    fn text(array: &dyn Array, row: usize) -> String {
        let mut s = String::new();
        write_text(array, row, &mut s).expect("text encoding");
        s
    }

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        let schema = Schema::new(
            columns
                .iter()
                .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        );
        RecordBatch::try_new(
            Arc::new(schema),
            columns.into_iter().map(|(_, a)| a).collect(),
        )
        .expect("batch")
    }

    /// Splits a DataRow body into its values (None for NULL).
    fn values(row: &DataRow) -> Vec<Option<Vec<u8>>> {
        let mut data = &row.data[..];
        let mut out = Vec::new();
        for _ in 0..row.field_count {
            let len = i32::from_be_bytes(data[..4].try_into().expect("len"));
            data = &data[4..];
            if len < 0 {
                out.push(None);
            } else {
                out.push(Some(data[..len as usize].to_vec()));
                data = &data[len as usize..];
            }
        }
        out
    }

    #[test]
    fn decimal_keeps_scale() {
        let a = Decimal128Array::from(vec![12_500_000_000_000i128, -5, 0, 7])
            .with_precision_and_scale(38, 12)
            .expect("decimal");
        assert_eq!(text(&a, 0), "12.500000000000");
        assert_eq!(text(&a, 1), "-0.000000000005");
        assert_eq!(text(&a, 2), "0.000000000000");
        assert_eq!(text(&a, 3), "0.000000000007");
        let whole = Decimal128Array::from(vec![123i128])
            .with_precision_and_scale(10, 0)
            .expect("decimal");
        assert_eq!(text(&whole, 0), "123");
        let big = Decimal128Array::from(vec![i128::MAX])
            .with_precision_and_scale(38, 2)
            .expect("decimal");
        assert_eq!(text(&big, 0), "1701411834604692317316873037158841057.27");
        let mut s = String::new();
        decimal_text("12", -3, &mut s);
        assert_eq!(s, "12000");
    }

    #[test]
    fn numeric_binary_matches_postgres() {
        // 12.5000 (scale 4): ndigits 2, weight 0, digits [12, 5000].
        let mut b = BytesMut::new();
        numeric_binary("125000", 4, &mut b);
        assert_eq!(
            &b[..],
            &[0, 2, 0, 0, 0, 0, 0, 4, 0, 12, 0x13, 0x88][..],
            "12.5000"
        );
        // -0.000000000005 (scale 12): groups 0000 0000 0005 → weight -3, digits [5].
        let mut b = BytesMut::new();
        numeric_binary("-5", 12, &mut b);
        assert_eq!(&b[..], &[0, 1, 0xff, 0xfd, 0x40, 0, 0, 12, 0, 5][..]);
        // zero keeps dscale.
        let mut b = BytesMut::new();
        numeric_binary("0", 3, &mut b);
        assert_eq!(&b[..], &[0, 0, 0, 0, 0, 0, 0, 3][..]);
        // 10000 → one digit 1 with weight 1.
        let mut b = BytesMut::new();
        numeric_binary("10000", 0, &mut b);
        assert_eq!(&b[..], &[0, 1, 0, 1, 0, 0, 0, 0, 0, 1][..]);
    }

    #[test]
    fn timestamps_like_postgres() {
        // 2026-10-01 12:00:00 UTC
        let micros = 1_790_856_000_000_000i64;
        let tz =
            TimestampMicrosecondArray::from(vec![micros, micros + 123_450]).with_timezone("UTC");
        assert_eq!(text(&tz, 0), "2026-10-01 12:00:00+00");
        assert_eq!(text(&tz, 1), "2026-10-01 12:00:00.12345+00");
        let naive = TimestampNanosecondArray::from(vec![micros * 1000 + 1_500]);
        assert_eq!(text(&naive, 0), "2026-10-01 12:00:00.000001");
        let before_epoch = TimestampMicrosecondArray::from(vec![-1]);
        assert_eq!(text(&before_epoch, 0), "1969-12-31 23:59:59.999999");
        let bc = TimestampMicrosecondArray::from(vec![-62_167_219_200_000_000]);
        assert_eq!(text(&bc, 0), "0001-01-01 00:00:00 BC");
    }

    #[test]
    fn dates_and_intervals() {
        let d = Date32Array::from(vec![0, 20_727]);
        assert_eq!(text(&d, 0), "1970-01-01");
        assert_eq!(text(&d, 1), "2026-10-01");
        let iv = IntervalMonthDayNanoArray::from(vec![
            IntervalMonthDayNano::new(14, 3, 14_706_500_000_000),
            IntervalMonthDayNano::new(0, 0, 0),
            IntervalMonthDayNano::new(0, -1, 7_200_000_000_000),
            IntervalMonthDayNano::new(1, 0, 0),
        ]);
        assert_eq!(text(&iv, 0), "1 year 2 mons 3 days 04:05:06.5");
        assert_eq!(text(&iv, 1), "00:00:00");
        assert_eq!(text(&iv, 2), "-1 days +02:00:00");
        assert_eq!(text(&iv, 3), "1 mon");
    }

    #[test]
    fn floats_like_postgres() {
        let f = Float64Array::from(vec![
            1.5,
            0.1,
            1e20,
            1.5e-5,
            f64::NAN,
            f64::NEG_INFINITY,
            0.0,
        ]);
        let got: Vec<String> = (0..f.len()).map(|i| text(&f, i)).collect();
        assert_eq!(
            got,
            ["1.5", "0.1", "1e+20", "1.5e-05", "NaN", "-Infinity", "0"]
        );
        let f4 = Float32Array::from(vec![0.1f32, 1234567.0]);
        assert_eq!(text(&f4, 0), "0.1");
        assert_eq!(text(&f4, 1), "1.234567e+06");
    }

    #[test]
    fn lists_and_records() {
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), None, Some(3)]),
            Some(vec![]),
            None,
        ]);
        assert_eq!(text(&list, 0), "{1,NULL,3}");
        assert_eq!(text(&list, 1), "{}");
        assert!(list.is_null(2));
        assert_eq!(pg_type(list.data_type()), Type::INT4_ARRAY);

        let strings: ArrayRef = Arc::new(StringArray::from(vec![
            Some("a b"),
            Some(""),
            Some("x\"y"),
            Some("null"),
            Some("plain"),
        ]));
        let offsets = datafusion::arrow::buffer::OffsetBuffer::from_lengths([5]);
        let slist = ListArray::new(
            Arc::new(Field::new_list_field(DataType::Utf8, true)),
            offsets,
            strings,
            None,
        );
        assert_eq!(text(&slist, 0), r#"{"a b","","x\"y","null",plain}"#);

        let st = StructArray::new(
            Fields::from(vec![
                Field::new("a", DataType::Int64, true),
                Field::new("b", DataType::Utf8, true),
                Field::new("c", DataType::Boolean, true),
            ]),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef,
                Arc::new(StringArray::from(vec![Some("x,y"), Some("z")])),
                Arc::new(BooleanArray::from(vec![Some(true), None])),
            ],
            None,
        );
        assert_eq!(text(&st, 0), r#"(1,"x,y",t)"#);
        assert_eq!(text(&st, 1), "(,z,)");
        assert_eq!(pg_type(st.data_type()), Type::RECORD);
    }

    #[test]
    fn nulls_and_formats_in_rows() {
        let b = batch(vec![
            (
                "i",
                Arc::new(Int32Array::from(vec![Some(7), None])) as ArrayRef,
            ),
            ("s", Arc::new(StringArray::from(vec![None, Some("hi")]))),
        ]);
        let mut enc = RowEncoder::new(Arc::from(vec![FieldFormat::Text, FieldFormat::Text]), None);
        let rows = enc.encode(&b).expect("encode");
        assert_eq!(values(&rows[0]), vec![Some(b"7".to_vec()), None]);
        assert_eq!(values(&rows[1]), vec![None, Some(b"hi".to_vec())]);

        let mut enc = RowEncoder::new(
            Arc::from(vec![FieldFormat::Binary, FieldFormat::Binary]),
            None,
        );
        let rows = enc.encode(&b).expect("encode");
        assert_eq!(values(&rows[0]), vec![Some(vec![0, 0, 0, 7]), None]);
    }

    #[test]
    fn expected_types_are_cast() {
        let b = batch(vec![("x", Arc::new(Int32Array::from(vec![5])) as ArrayRef)]);
        let mut enc = RowEncoder::new(
            Arc::from(vec![FieldFormat::Binary]),
            Some(Arc::from(vec![DataType::Int64])),
        );
        let rows = enc.encode(&b).expect("encode");
        assert_eq!(values(&rows[0]), vec![Some(vec![0, 0, 0, 0, 0, 0, 0, 5])]);
    }

    #[test]
    fn type_mapping() {
        assert_eq!(pg_type(&DataType::Utf8View), Type::TEXT);
        assert_eq!(pg_type(&DataType::UInt32), Type::INT8);
        assert_eq!(pg_type(&DataType::UInt64), Type::NUMERIC);
        assert_eq!(pg_type(&DataType::Decimal128(38, 12)), Type::NUMERIC);
        assert_eq!(
            pg_type(&DataType::Timestamp(
                TimeUnit::Microsecond,
                Some("UTC".into())
            )),
            Type::TIMESTAMPTZ
        );
        assert_eq!(pg_type(&DataType::Null), Type::TEXT);
        let fi = field_info("amount", &DataType::Decimal128(18, 4), FieldFormat::Text);
        assert_eq!(fi.type_modifier(), ((18 << 16) | 4) + 4);
    }
}

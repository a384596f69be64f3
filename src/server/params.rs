//! Bind parameters: PostgreSQL text/binary values → DataFusion scalars.
//!
//! Each `$n` is decoded as the type the client believes it is sending (the
//! type it declared in Parse, else the type we described), then cast to the
//! type DataFusion inferred for the placeholder, so `WHERE id = $1` compares
//! like with like.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::datatypes::{DataType, IntervalMonthDayNano, TimeUnit};
use datafusion::common::ScalarValue;
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::error::PgWireError;

use super::encode::pg_type;
use super::sqlstate::{
    FEATURE_NOT_SUPPORTED, INVALID_TEXT_REPRESENTATION, NUMERIC_VALUE_OUT_OF_RANGE,
    PROTOCOL_VIOLATION,
};
use super::{df_error, pg_error};

const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
const PG_EPOCH_DAYS: i32 = 10_957;

/// The type a parameter is described as: the client's declaration wins,
/// then DataFusion's inference, then `text` (like PostgreSQL's `unknown`).
pub fn described_type(client: Option<&Type>, inferred: Option<&DataType>) -> Type {
    client
        .cloned()
        .or_else(|| inferred.map(pg_type))
        .unwrap_or(Type::TEXT)
}

/// The Arrow type a declared PostgreSQL parameter type naturally maps to,
/// used when DataFusion could not infer one.
fn arrow_type_for(t: &Type) -> Option<DataType> {
    Some(match *t {
        Type::BOOL => DataType::Boolean,
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 | Type::OID => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON | Type::UUID => {
            DataType::Utf8
        }
        Type::BYTEA => DataType::Binary,
        Type::DATE => DataType::Date32,
        Type::TIME => DataType::Time64(TimeUnit::Microsecond),
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("+00:00"))),
        Type::INTERVAL => {
            DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::MonthDayNano)
        }
        _ => return None,
    })
}

/// Decodes all parameters of a Bind. `client_types` are the Parse-declared
/// types, `inferred` DataFusion's placeholder types (index 0 is `$1`).
pub fn decode_params(
    values: &[Option<Bytes>],
    format: &Format,
    client_types: &[Option<Type>],
    inferred: &[Option<DataType>],
) -> Result<Vec<ScalarValue>, PgWireError> {
    if values.len() < inferred.len() {
        return Err(pg_error(
            PROTOCOL_VIOLATION,
            format!(
                "bind message supplies {} parameters, but prepared statement requires {}",
                values.len(),
                inferred.len()
            ),
        ));
    }
    values
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let declared = client_types.get(i).and_then(Option::as_ref);
            let target = inferred.get(i).and_then(Option::as_ref);
            let wire_type = described_type(declared, target);
            decode_one(value.as_deref(), format.is_binary(i), &wire_type, target)
        })
        .collect()
}

fn decode_one(
    value: Option<&[u8]>,
    binary: bool,
    wire_type: &Type,
    target: Option<&DataType>,
) -> Result<ScalarValue, PgWireError> {
    let natural = arrow_type_for(wire_type).unwrap_or(DataType::Utf8);
    let Some(bytes) = value else {
        let dt = target.cloned().unwrap_or(natural);
        return ScalarValue::try_from(&dt).map_err(df_error);
    };
    let scalar = if binary {
        from_binary(bytes, wire_type)?
    } else {
        let text = std::str::from_utf8(bytes).map_err(|_| {
            pg_error(
                super::sqlstate::CHARACTER_NOT_IN_REPERTOIRE,
                "invalid byte sequence for encoding \"UTF8\"",
            )
        })?;
        return from_text(text, wire_type, target.unwrap_or(&natural));
    };
    match target {
        Some(dt) if &scalar.data_type() != dt => scalar.cast_to(dt).map_err(df_error),
        _ => Ok(scalar),
    }
}

fn invalid_input(t: &Type, text: &str) -> PgWireError {
    pg_error(
        INVALID_TEXT_REPRESENTATION,
        format!("invalid input syntax for type {}: \"{text}\"", t.name()),
    )
}

/// Text-format parameter → scalar of `target`.
fn from_text(text: &str, wire_type: &Type, target: &DataType) -> Result<ScalarValue, PgWireError> {
    match target {
        DataType::Boolean => parse_bool(text)
            .map(|b| ScalarValue::Boolean(Some(b)))
            .ok_or_else(|| invalid_input(wire_type, text)),
        DataType::Utf8 => Ok(ScalarValue::Utf8(Some(text.to_owned()))),
        DataType::Decimal128(..) | DataType::Decimal256(..) if *wire_type == Type::NUMERIC => {
            let (v, s) = parse_decimal(text).ok_or_else(|| invalid_input(wire_type, text))?;
            ScalarValue::Decimal128(Some(v), 38, s)
                .cast_to(target)
                .map_err(df_error)
        }
        DataType::Timestamp(..) => ScalarValue::Utf8(Some(normalize_offset(text)))
            .cast_to(target)
            .map_err(|_| invalid_input(wire_type, text)),
        _ => ScalarValue::Utf8(Some(text.trim().to_owned()))
            .cast_to(target)
            .map_err(|_| invalid_input(wire_type, text)),
    }
}

/// PostgreSQL's boolean input spellings.
fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// PostgreSQL prints offsets as `+00`; Arrow's parser wants `+00:00`.
fn normalize_offset(text: &str) -> String {
    let t = text.trim();
    let bytes = t.as_bytes();
    if bytes.len() > 3 {
        let tail = &bytes[bytes.len() - 3..];
        if (tail[0] == b'+' || tail[0] == b'-')
            && tail[1].is_ascii_digit()
            && tail[2].is_ascii_digit()
            && bytes[bytes.len() - 4].is_ascii_digit()
        {
            return format!("{t}:00");
        }
    }
    t.to_owned()
}

/// `[+-]digits[.digits]` → (unscaled, scale), exactly; `None` if malformed or
/// wider than 38 digits.
pub fn parse_decimal(text: &str) -> Option<(i128, i8)> {
    let t = text.trim();
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let scale = i8::try_from(frac.len()).ok().filter(|s| *s <= 38)?;
    let mut v: i128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        v = v.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    Some((if negative { -v } else { v }, scale))
}

fn fixed<const N: usize>(bytes: &[u8], t: &Type) -> Result<[u8; N], PgWireError> {
    bytes.try_into().map_err(|_| {
        pg_error(
            PROTOCOL_VIOLATION,
            format!(
                "incorrect binary data format in bind parameter of type {}",
                t.name()
            ),
        )
    })
}

/// Binary-format parameter → its natural scalar.
fn from_binary(bytes: &[u8], t: &Type) -> Result<ScalarValue, PgWireError> {
    Ok(match *t {
        Type::BOOL => ScalarValue::Boolean(Some(fixed::<1>(bytes, t)?[0] != 0)),
        Type::INT2 => ScalarValue::Int16(Some(i16::from_be_bytes(fixed(bytes, t)?))),
        Type::INT4 => ScalarValue::Int32(Some(i32::from_be_bytes(fixed(bytes, t)?))),
        Type::INT8 => ScalarValue::Int64(Some(i64::from_be_bytes(fixed(bytes, t)?))),
        Type::OID => ScalarValue::Int64(Some(i64::from(u32::from_be_bytes(fixed(bytes, t)?)))),
        Type::FLOAT4 => ScalarValue::Float32(Some(f32::from_be_bytes(fixed(bytes, t)?))),
        Type::FLOAT8 => ScalarValue::Float64(Some(f64::from_be_bytes(fixed(bytes, t)?))),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON => {
            let s = std::str::from_utf8(bytes).map_err(|_| {
                pg_error(
                    super::sqlstate::CHARACTER_NOT_IN_REPERTOIRE,
                    "invalid byte sequence for encoding \"UTF8\"",
                )
            })?;
            ScalarValue::Utf8(Some(s.to_owned()))
        }
        Type::BYTEA => ScalarValue::Binary(Some(bytes.to_vec())),
        Type::DATE => {
            let days = i32::from_be_bytes(fixed(bytes, t)?);
            ScalarValue::Date32(Some(days.checked_add(PG_EPOCH_DAYS).ok_or_else(|| {
                pg_error(
                    super::sqlstate::DATETIME_FIELD_OVERFLOW,
                    "date out of range",
                )
            })?))
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let micros = i64::from_be_bytes(fixed(bytes, t)?)
                .checked_add(PG_EPOCH_MICROS)
                .ok_or_else(|| {
                    pg_error(
                        super::sqlstate::DATETIME_FIELD_OVERFLOW,
                        "timestamp out of range",
                    )
                })?;
            let tz = (*t == Type::TIMESTAMPTZ).then(|| Arc::from("+00:00"));
            ScalarValue::TimestampMicrosecond(Some(micros), tz)
        }
        Type::TIME => ScalarValue::Time64Microsecond(Some(i64::from_be_bytes(fixed(bytes, t)?))),
        Type::INTERVAL => {
            let raw: [u8; 16] = fixed(bytes, t)?;
            let micros = i64::from_be_bytes(raw[0..8].try_into().unwrap_or_default());
            let days = i32::from_be_bytes(raw[8..12].try_into().unwrap_or_default());
            let months = i32::from_be_bytes(raw[12..16].try_into().unwrap_or_default());
            let nanos = micros
                .checked_mul(1000)
                .ok_or_else(|| pg_error(NUMERIC_VALUE_OUT_OF_RANGE, "interval out of range"))?;
            ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(months, days, nanos)))
        }
        Type::NUMERIC => {
            let text = numeric_from_binary(bytes)
                .ok_or_else(|| pg_error(PROTOCOL_VIOLATION, "invalid binary numeric parameter"))?;
            let (v, s) = parse_decimal(&text).ok_or_else(|| {
                pg_error(
                    NUMERIC_VALUE_OUT_OF_RANGE,
                    format!("numeric parameter {text} does not fit in 38 digits"),
                )
            })?;
            ScalarValue::Decimal128(Some(v), 38, s)
        }
        Type::UUID => {
            let raw: [u8; 16] = fixed(bytes, t)?;
            let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            ScalarValue::Utf8(Some(format!(
                "{}-{}-{}-{}-{}",
                &hex[0..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..32]
            )))
        }
        _ => {
            return Err(pg_error(
                FEATURE_NOT_SUPPORTED,
                format!(
                    "binary format for parameters of type {} is not supported",
                    t.name()
                ),
            ));
        }
    })
}

/// Binary numeric (ndigits, weight, sign, dscale, base-10000 digits) → text.
fn numeric_from_binary(bytes: &[u8]) -> Option<String> {
    let header = bytes.get(..8)?;
    let ndigits = usize::try_from(i16::from_be_bytes([header[0], header[1]])).ok()?;
    let weight = i32::from(i16::from_be_bytes([header[2], header[3]]));
    let sign = u16::from_be_bytes([header[4], header[5]]);
    let dscale = usize::from(u16::from_be_bytes([header[6], header[7]]));
    if sign == 0xC000 || (sign != 0 && sign != 0x4000) {
        return None; // NaN / infinities have no Decimal128 value
    }
    let digits: Vec<i16> = bytes
        .get(8..8 + ndigits * 2)?
        .chunks_exact(2)
        .map(|c| i16::from_be_bytes([c[0], c[1]]))
        .collect();
    if digits.iter().any(|d| !(0..10_000).contains(d)) {
        return None;
    }
    let digit_at = |pos: i32| -> i16 {
        usize::try_from(pos)
            .ok()
            .and_then(|p| digits.get(p).copied())
            .unwrap_or(0)
    };
    let mut int = String::new();
    for pos in 0..=weight {
        if int.is_empty() {
            let d = digit_at(pos);
            if d != 0 {
                int.push_str(&d.to_string());
            }
        } else {
            int.push_str(&format!("{:04}", digit_at(pos)));
        }
    }
    if int.is_empty() {
        int.push('0');
    }
    let mut frac = String::new();
    let mut pos = weight + 1;
    while frac.len() < dscale {
        frac.push_str(&format!("{:04}", digit_at(pos)));
        pos += 1;
    }
    frac.truncate(dscale);
    let sign = if sign == 0x4000 { "-" } else { "" };
    Some(if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    })
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::server::encode::numeric_binary;

    #[test]
    fn text_params_cast_to_inferred_types() {
        let values = vec![
            Some(Bytes::from_static(b"42")),
            Some(Bytes::from_static(b"t")),
            None,
            Some(Bytes::from_static(b"12.500")),
        ];
        let inferred = vec![
            Some(DataType::Int64),
            Some(DataType::Boolean),
            Some(DataType::Utf8),
            Some(DataType::Decimal128(20, 4)),
        ];
        let got = decode_params(&values, &Format::UnifiedText, &[], &inferred).expect("decode");
        assert_eq!(got[0], ScalarValue::Int64(Some(42)));
        assert_eq!(got[1], ScalarValue::Boolean(Some(true)));
        assert_eq!(got[2], ScalarValue::Utf8(None));
        assert_eq!(got[3], ScalarValue::Decimal128(Some(125_000), 20, 4));
    }

    #[test]
    fn untyped_text_param_is_text() {
        let got = decode_params(
            &[Some(Bytes::from_static(b"hi"))],
            &Format::UnifiedText,
            &[],
            &[None],
        )
        .expect("decode");
        assert_eq!(got[0], ScalarValue::Utf8(Some("hi".into())));
    }

    #[test]
    fn binary_params() {
        let values = vec![
            Some(Bytes::copy_from_slice(&7i64.to_be_bytes())),
            Some(Bytes::copy_from_slice(&5i32.to_be_bytes())),
        ];
        let declared = vec![Some(Type::INT8), Some(Type::INT4)];
        let inferred = vec![Some(DataType::Int64), Some(DataType::Int64)];
        let got =
            decode_params(&values, &Format::UnifiedBinary, &declared, &inferred).expect("decode");
        assert_eq!(
            got,
            vec![ScalarValue::Int64(Some(7)), ScalarValue::Int64(Some(5))]
        );
    }

    #[test]
    fn binary_numeric_roundtrip() {
        for (unscaled, scale, text) in [
            ("125000", 4i8, "12.5000"),
            ("-5", 12, "-0.000000000005"),
            ("0", 3, "0.000"),
            ("10000", 0, "10000"),
            (
                "123456789012345678901234567890",
                10,
                "12345678901234567890.1234567890",
            ),
        ] {
            let mut b = BytesMut::new();
            numeric_binary(unscaled, scale, &mut b);
            assert_eq!(
                numeric_from_binary(&b).as_deref(),
                Some(text),
                "{unscaled} e-{scale}"
            );
        }
    }

    #[test]
    fn bad_input_is_22p02() {
        let err = decode_params(
            &[Some(Bytes::from_static(b"abc"))],
            &Format::UnifiedText,
            &[],
            &[Some(DataType::Int64)],
        )
        .expect_err("must fail");
        match err {
            PgWireError::UserError(info) => assert_eq!(info.code, "22P02"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn too_few_params() {
        let err = decode_params(&[], &Format::UnifiedText, &[], &[Some(DataType::Int64)])
            .expect_err("must fail");
        assert!(matches!(err, PgWireError::UserError(info) if info.code == "08P01"));
    }

    #[test]
    fn timestamptz_text_with_short_offset() {
        let got = decode_params(
            &[Some(Bytes::from_static(b"2026-10-01 12:00:00+00"))],
            &Format::UnifiedText,
            &[],
            &[Some(DataType::Timestamp(
                TimeUnit::Microsecond,
                Some("+00:00".into()),
            ))],
        )
        .expect("decode");
        assert_eq!(
            got[0],
            ScalarValue::TimestampMicrosecond(Some(1_790_856_000_000_000), Some("+00:00".into()))
        );
    }

    #[test]
    fn decimal_parsing() {
        assert_eq!(parse_decimal("12.500"), Some((12_500, 3)));
        assert_eq!(parse_decimal("-0.5"), Some((-5, 1)));
        assert_eq!(parse_decimal("7"), Some((7, 0)));
        assert_eq!(parse_decimal("1e5"), None);
        assert_eq!(parse_decimal(""), None);
    }
}

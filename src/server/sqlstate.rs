//! Maps DataFusion errors to PostgreSQL SQLSTATE codes.
//!
//! Clients (psql, drivers, ORMs) branch on the SQLSTATE, not on the message, so
//! each failure class must land on the code PostgreSQL itself would send.
//! DataFusion reports many distinct failures as `Plan`/`Execution` strings, so
//! part of the mapping has to look at the message text.

use std::error::Error as StdError;

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;

use crate::Error;

// SQLSTATE codes the server sends, named as in PostgreSQL's errcodes appendix.
pub const SYNTAX_ERROR: &str = "42601";
pub const UNDEFINED_TABLE: &str = "42P01";
pub const UNDEFINED_COLUMN: &str = "42703";
pub const DUPLICATE_COLUMN: &str = "42701";
pub const UNDEFINED_FUNCTION: &str = "42883";
pub const SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION: &str = "42000";
pub const DIVISION_BY_ZERO: &str = "22012";
pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
pub const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003";
pub const DATA_EXCEPTION: &str = "22000";
pub const INVALID_PARAMETER_VALUE: &str = "22023";
pub const DATATYPE_MISMATCH: &str = "42804";
pub const NOT_NULL_VIOLATION: &str = "23502";
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
pub const OUT_OF_MEMORY: &str = "53200";
pub const TOO_MANY_CONNECTIONS: &str = "53300";
pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
pub const INTERNAL_ERROR: &str = "XX000";
pub const DATA_CORRUPTED: &str = "XX001";
pub const IO_ERROR: &str = "58030";
pub const OBJECT_IN_USE: &str = "55006";
pub const BAD_COPY_FILE_FORMAT: &str = "22P04";
pub const INVALID_AUTHORIZATION_SPECIFICATION: &str = "28000";
pub const INVALID_PASSWORD: &str = "28P01";
pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
pub const INVALID_CATALOG_NAME: &str = "3D000";
pub const ADMIN_SHUTDOWN: &str = "57P01";
pub const QUERY_CANCELED: &str = "57014";
pub const IN_FAILED_SQL_TRANSACTION: &str = "25P02";
pub const PROTOCOL_VIOLATION: &str = "08P01";
pub const UNDEFINED_OBJECT: &str = "42704";
pub const CHARACTER_NOT_IN_REPERTOIRE: &str = "22021";
pub const DATETIME_FIELD_OVERFLOW: &str = "22008";

/// The SQLSTATE for a DataFusion error.
///
/// Wrappers (`Context`, `Diagnostic`, `Shared`, `Collection`, `External` around
/// another DataFusion or engine error) are looked through, so the code reflects
/// the underlying failure rather than where it was wrapped.
pub fn sqlstate_for(e: &DataFusionError) -> &'static str {
    match e {
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            sqlstate_for(inner)
        }
        DataFusionError::Shared(inner) => sqlstate_for(inner),
        DataFusionError::Collection(errs) => errs.first().map_or(INTERNAL_ERROR, sqlstate_for),
        DataFusionError::SQL(err, _) => match err.as_ref() {
            ParserError::RecursionLimitExceeded => PROGRAM_LIMIT_EXCEEDED,
            _ => SYNTAX_ERROR,
        },
        DataFusionError::SchemaError(err, _) => {
            use datafusion::common::SchemaError;
            match err.as_ref() {
                SchemaError::FieldNotFound { .. } | SchemaError::AmbiguousReference { .. } => {
                    UNDEFINED_COLUMN
                }
                SchemaError::DuplicateQualifiedField { .. }
                | SchemaError::DuplicateUnqualifiedField { .. } => DUPLICATE_COLUMN,
            }
        }
        DataFusionError::Plan(msg) => plan_message(msg),
        DataFusionError::Execution(msg) => execution_message(msg),
        DataFusionError::NotImplemented(_) => FEATURE_NOT_SUPPORTED,
        DataFusionError::ResourcesExhausted(_) => OUT_OF_MEMORY,
        DataFusionError::Internal(_) => INTERNAL_ERROR,
        DataFusionError::Configuration(_) => INVALID_PARAMETER_VALUE,
        DataFusionError::ArrowError(err, _) => arrow(err),
        DataFusionError::IoError(_) | DataFusionError::ObjectStore(_) => IO_ERROR,
        DataFusionError::ParquetError(_) => DATA_CORRUPTED,
        DataFusionError::External(err) => external(err.as_ref()),
        DataFusionError::ExecutionJoin(_)
        | DataFusionError::Substrait(_)
        | DataFusionError::Ffi(_) => INTERNAL_ERROR,
    }
}

/// Planning errors: DataFusion encodes the kind only in the message.
fn plan_message(msg: &str) -> &'static str {
    let lower = msg.to_ascii_lowercase();
    if lower.starts_with("table '") && lower.contains("' not found") {
        UNDEFINED_TABLE
    } else if lower.starts_with("invalid function")
        || (lower.contains("function '") && lower.contains("not found"))
    {
        UNDEFINED_FUNCTION
    } else if lower.contains("division by zero") || lower.contains("divide by zero") {
        DIVISION_BY_ZERO
    } else if is_not_null_violation(&lower) {
        NOT_NULL_VIOLATION
    } else if is_cast_failure(&lower) {
        INVALID_TEXT_REPRESENTATION
    } else if lower.contains("no function matches the given name and argument types")
        || lower.contains("failed to coerce arguments")
        || lower.contains("cannot coerce arithmetic expression")
        || lower.contains("there isn't a common type to coerce")
    {
        // PostgreSQL: "function f(integer) does not exist" / "operator does not exist".
        UNDEFINED_FUNCTION
    } else if lower.contains("non-boolean predicate") || lower.contains("must be boolean") {
        DATATYPE_MISMATCH
    } else {
        SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION
    }
}

/// Execution errors: same story as planning, different fallback.
fn execution_message(msg: &str) -> &'static str {
    let lower = msg.to_ascii_lowercase();
    if lower.contains("divide by zero") || lower.contains("division by zero") {
        DIVISION_BY_ZERO
    } else if is_not_null_violation(&lower) {
        NOT_NULL_VIOLATION
    } else if lower.contains("not recognized") {
        INVALID_PARAMETER_VALUE
    } else if is_cast_failure(&lower) || lower.contains("invalid") {
        INVALID_TEXT_REPRESENTATION
    } else if lower.contains("not allowed")
        || lower.contains("unsupported") && lower.contains("granularity")
        || lower.contains("unrecognized configuration parameter")
    {
        INVALID_PARAMETER_VALUE
    } else {
        DATA_EXCEPTION
    }
}

/// Checked before the cast test: DataFusion's message for a NULL written into
/// a non-nullable column starts with "Invalid batch column".
fn is_not_null_violation(lower: &str) -> bool {
    lower.contains("non-nullable") || lower.contains("violates not-null")
}

fn is_cast_failure(lower: &str) -> bool {
    lower.contains("cannot cast")
        || lower.contains("cannot parse")
        || lower.contains("invalid input syntax")
        || lower.contains("cast error")
        || lower.contains("parser error")
}

fn arrow(e: &ArrowError) -> &'static str {
    match e {
        ArrowError::CastError(_) | ArrowError::ParseError(_) => INVALID_TEXT_REPRESENTATION,
        ArrowError::DivideByZero => DIVISION_BY_ZERO,
        ArrowError::ArithmeticOverflow(_) => NUMERIC_VALUE_OUT_OF_RANGE,
        ArrowError::MemoryError(_) => OUT_OF_MEMORY,
        ArrowError::NotYetImplemented(_) => FEATURE_NOT_SUPPORTED,
        ArrowError::IoError(_, _) => IO_ERROR,
        ArrowError::ExternalError(inner) => external(inner.as_ref()),
        ArrowError::InvalidArgumentError(msg) | ArrowError::ComputeError(msg) => {
            let lower = msg.to_ascii_lowercase();
            if is_not_null_violation(&lower) || lower.contains("contains null values") {
                NOT_NULL_VIOLATION
            } else {
                DATA_EXCEPTION
            }
        }
        _ => DATA_EXCEPTION,
    }
}

/// `External` carries either another DataFusion error, an engine error
/// (`crate::Error`), an Arrow error, or something foreign.
fn external(e: &(dyn StdError + Send + Sync + 'static)) -> &'static str {
    if e.downcast_ref::<StatementTimeout>().is_some() {
        QUERY_CANCELED
    } else if let Some(df) = e.downcast_ref::<DataFusionError>() {
        sqlstate_for(df)
    } else if let Some(engine) = e.downcast_ref::<Error>() {
        engine_sqlstate(engine)
    } else if let Some(a) = e.downcast_ref::<ArrowError>() {
        arrow(a)
    } else if e.downcast_ref::<std::io::Error>().is_some() {
        IO_ERROR
    } else {
        INTERNAL_ERROR
    }
}

/// `statement_timeout` ran out while a result streamed (SQLSTATE 57014).
#[derive(Debug)]
pub struct StatementTimeout;

impl std::fmt::Display for StatementTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("canceling statement due to statement timeout")
    }
}

impl StdError for StatementTimeout {}

/// The SQLSTATE for an engine error surfacing through DataFusion.
pub fn engine_sqlstate(e: &Error) -> &'static str {
    match e {
        Error::Invalid(_) => INVALID_PARAMETER_VALUE,
        Error::DataFusion(df) => sqlstate_for(df),
        Error::Arrow(a) => arrow(a),
        Error::Io { .. } => IO_ERROR,
        Error::Corrupt { .. } => DATA_CORRUPTED,
        Error::Locked(_) => OBJECT_IN_USE,
        Error::BadRecord { .. } => BAD_COPY_FILE_FORMAT,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::common::{Column, SchemaError};

    use super::*;

    fn code(e: DataFusionError) -> &'static str {
        sqlstate_for(&e)
    }

    #[test]
    fn table_not_found() {
        assert_eq!(
            code(DataFusionError::Plan(
                "table 'datafusion.public.nope' not found".into()
            )),
            "42P01"
        );
    }

    #[test]
    fn column_not_found_and_ambiguous() {
        let missing = DataFusionError::SchemaError(
            Box::new(SchemaError::FieldNotFound {
                field: Box::new(Column::from_name("x")),
                valid_fields: vec![],
            }),
            Box::new(None),
        );
        assert_eq!(code(missing), "42703");
        let ambiguous = DataFusionError::SchemaError(
            Box::new(SchemaError::AmbiguousReference {
                field: Box::new(Column::from_name("x")),
            }),
            Box::new(None),
        );
        assert_eq!(code(ambiguous), "42703");
        let dup = DataFusionError::SchemaError(
            Box::new(SchemaError::DuplicateUnqualifiedField { name: "x".into() }),
            Box::new(None),
        );
        assert_eq!(code(dup), "42701");
    }

    #[test]
    fn function_not_found() {
        assert_eq!(
            code(DataFusionError::Plan(
                "Invalid function 'nosuch'.\nDid you mean 'nanvl'?".into()
            )),
            "42883"
        );
    }

    #[test]
    fn parser_error() {
        let e = DataFusionError::SQL(
            Box::new(ParserError::ParserError("Expected: an expression".into())),
            None,
        );
        assert_eq!(code(e), "42601");
    }

    #[test]
    fn division_by_zero() {
        assert_eq!(
            code(DataFusionError::Plan("Divide by zero".into())),
            "22012"
        );
        assert_eq!(
            code(DataFusionError::Plan("division by zero in constant".into())),
            "22012"
        );
        assert_eq!(
            code(DataFusionError::Execution("Divide by zero error".into())),
            "22012"
        );
        assert_eq!(
            code(DataFusionError::ArrowError(
                Box::new(ArrowError::DivideByZero),
                None
            )),
            "22012"
        );
    }

    #[test]
    fn cast_and_parse_errors() {
        assert_eq!(
            code(DataFusionError::Execution(
                "Cannot cast string 'abc' to value of Int64 type".into()
            )),
            "22P02"
        );
        assert_eq!(
            code(DataFusionError::Execution("invalid digit found".into())),
            "22P02"
        );
        assert_eq!(
            code(DataFusionError::ArrowError(
                Box::new(ArrowError::CastError("Cannot cast".into())),
                None
            )),
            "22P02"
        );
        assert_eq!(
            code(DataFusionError::ArrowError(
                Box::new(ArrowError::ParseError("bad".into())),
                None
            )),
            "22P02"
        );
        assert_eq!(
            code(DataFusionError::Plan("Cannot cast Utf8 to Int32".into())),
            "22P02"
        );
    }

    #[test]
    fn not_implemented_resources_internal() {
        assert_eq!(
            code(DataFusionError::NotImplemented("LATERAL".into())),
            "0A000"
        );
        assert_eq!(
            code(DataFusionError::ResourcesExhausted("memory".into())),
            "53200"
        );
        assert_eq!(code(DataFusionError::Internal("bug".into())), "XX000");
    }

    #[test]
    fn not_null_violation() {
        assert_eq!(
            code(DataFusionError::Execution(
                "Invalid batch column at '0' has null but schema specifies non-nullable".into()
            )),
            "23502"
        );
    }

    #[test]
    fn other_plan_and_execution() {
        assert_eq!(
            code(DataFusionError::Plan("something else".into())),
            "42000"
        );
        assert_eq!(
            code(DataFusionError::Execution("something else".into())),
            "22000"
        );
    }

    #[test]
    fn external_engine_errors() {
        let invalid = DataFusionError::External(Box::new(Error::Invalid("bad option".into())));
        assert_eq!(code(invalid), "22023");
        let nested =
            DataFusionError::External(Box::new(DataFusionError::NotImplemented("x".into())));
        assert_eq!(code(nested), "0A000");
        let via_from: DataFusionError = Error::Invalid("bad".into()).into();
        assert_eq!(code(via_from), "22023");
    }

    #[test]
    fn wrappers_are_transparent() {
        let inner = DataFusionError::Plan("table 't' not found".into());
        assert_eq!(code(inner.context("while planning")), "42P01");
        let shared =
            DataFusionError::Shared(Arc::new(DataFusionError::ResourcesExhausted("x".into())));
        assert_eq!(code(shared), "53200");
        let arrow_wrapped = DataFusionError::ArrowError(
            Box::new(ArrowError::ExternalError(Box::new(
                DataFusionError::Internal("x".into()),
            ))),
            None,
        );
        assert_eq!(code(arrow_wrapped), "XX000");
    }
}

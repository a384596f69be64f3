//! `cost_part(parts, name)`: one part of what `usage_cost` returns, read where it stands.
//!
//! `parts['input_cost']` would read the same value, but DataFusion 55 treats a struct field
//! read as a leaf expression: below a filter on `ts` its `push_down_leaf_projections` rule
//! substitutes `usage_cost(...)` for `parts` in each of the five reads, after common
//! subexpression elimination has run, so every row was costed five times. A scalar function
//! of its own keeps the default placement (stay in place), so `spend` costs each row once.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Decimal128Array};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    TypeSignature, Volatility,
};

use crate::args;
use crate::usage_cost::PARTS;

/// `cost_part(parts, name)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CostPartFunc {
    signature: Signature,
}

impl Default for CostPartFunc {
    fn default() -> Self {
        CostPartFunc {
            signature: Signature::new(TypeSignature::Any(2), Volatility::Immutable),
        }
    }
}

static DOC: std::sync::LazyLock<Documentation> = std::sync::LazyLock::new(|| {
    Documentation::builder(
        crate::DOC_SECTION,
        "One part of the STRUCT that `usage_cost` returns, as DECIMAL(38,12): the same value \
         as `parts['input_cost']`, NULL where the row has no price. Unlike the field read, \
         the query planner never copies the `usage_cost` call into it, so a query that reads \
         several parts costs each row once.",
        "cost_part(parts, name)",
    )
    .with_sql_example(
        "```sql\n> SELECT cost_part(usage_cost('openai', 'gpt-4o', now(), 'standard', NULL, \
         1000000, 0, 0, 0, 0, 1), 'input_cost');\n+------------------+\n| 2.500000000000   |\n\
         +------------------+\n```",
    )
    .with_argument("parts", "What `usage_cost(...)` returned.")
    .with_argument(
        "name",
        "A literal part name: input_cost, cached_cost, cache_write_cost, output_cost or \
         request_cost.",
    )
    .build()
});

/// The position of part `name` in `usage_cost`'s STRUCT.
fn part_index(name: &str) -> Result<usize> {
    match PARTS.iter().position(|part| *part == name) {
        Some(index) => Ok(index),
        None => plan_err!(
            "cost_part: no part named '{name}'; the parts are {}",
            PARTS.join(", ")
        ),
    }
}

fn literal_name(value: Option<&ScalarValue>) -> Result<&str> {
    match value.and_then(ScalarValue::try_as_str) {
        Some(Some(name)) => Ok(name),
        _ => plan_err!("cost_part: the part name must be a text literal"),
    }
}

/// Checks that `data_type` is `usage_cost`'s STRUCT (or an untyped NULL).
fn check_parts_type(data_type: &DataType) -> Result<()> {
    match data_type {
        DataType::Null => Ok(()),
        DataType::Struct(fields)
            if fields.len() == PARTS.len()
                && fields
                    .iter()
                    .zip(PARTS)
                    .all(|(field, part)| field.name() == part) =>
        {
            Ok(())
        }
        other => plan_err!("cost_part: parts must be what usage_cost returns, not {other}"),
    }
}

/// Part `index` of every row of `parts`, NULL where the row is NULL.
fn read_part(parts: &ArrayRef, index: usize) -> Result<ArrayRef> {
    if parts.data_type() == &DataType::Null {
        return Ok(arrow::array::new_null_array(
            &args::cost_type(),
            parts.len(),
        ));
    }
    let Some(parts) = parts.as_struct_opt() else {
        return exec_err!("cost_part: parts must be a STRUCT");
    };
    let Some(column) = parts.column(index).as_primitive_opt() else {
        return exec_err!("cost_part: the parts must be decimals");
    };
    let column: &Decimal128Array = column;
    let nulls = NullBuffer::union(parts.nulls(), column.nulls());
    let values = Decimal128Array::try_new(column.values().clone(), nulls)?
        .with_data_type(column.data_type().clone());
    Ok(Arc::new(values))
}

impl ScalarUDFImpl for CostPartFunc {
    fn name(&self) -> &str {
        "cost_part"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(args::cost_type())
    }

    fn return_field_from_args(&self, call: ReturnFieldArgs) -> Result<FieldRef> {
        check_parts_type(call.arg_fields[0].data_type())?;
        part_index(literal_name(call.scalar_arguments[1])?)?;
        Ok(Arc::new(Field::new(self.name(), args::cost_type(), true)))
    }

    fn invoke_with_args(&self, call: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let index = match &call.args[1] {
            ColumnarValue::Scalar(name) => part_index(literal_name(Some(name))?)?,
            ColumnarValue::Array(_) => {
                return exec_err!("cost_part: the part name must be a text literal");
            }
        };
        match &call.args[0] {
            ColumnarValue::Array(parts) => Ok(ColumnarValue::Array(read_part(parts, index)?)),
            ColumnarValue::Scalar(parts) => {
                let part = read_part(&parts.to_array()?, index)?;
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                    &part, 0,
                )?))
            }
        }
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StructArray;
    use arrow::datatypes::Fields;
    use datafusion::config::ConfigOptions;

    fn parts_fields() -> Fields {
        PARTS
            .iter()
            .map(|name| Field::new(*name, args::cost_type(), true))
            .collect()
    }

    /// Three rows: priced, unpriced (the struct is NULL), priced.
    fn parts() -> ArrayRef {
        let columns = (0..PARTS.len() as i128)
            .map(|part| {
                let values =
                    Decimal128Array::from(vec![Some(100 + part), Some(999), Some(300 + part)]);
                Arc::new(values.with_data_type(args::cost_type())) as ArrayRef
            })
            .collect();
        let nulls = NullBuffer::from(vec![true, false, true]);
        Arc::new(StructArray::new(parts_fields(), columns, Some(nulls)))
    }

    fn invoke(parts: ColumnarValue, name: &str) -> Result<ColumnarValue> {
        let rows = match &parts {
            ColumnarValue::Array(a) => a.len(),
            ColumnarValue::Scalar(_) => 1,
        };
        CostPartFunc::default().invoke_with_args(ScalarFunctionArgs {
            number_rows: rows,
            arg_fields: vec![
                Arc::new(Field::new("parts", parts.data_type(), true)),
                Arc::new(Field::new("name", DataType::Utf8, false)),
            ],
            args: vec![
                parts,
                ColumnarValue::Scalar(ScalarValue::Utf8(Some(name.into()))),
            ],
            return_field: Arc::new(Field::new("out", args::cost_type(), true)),
            config_options: Arc::new(ConfigOptions::default()),
        })
    }

    fn decimal(v: Option<i128>) -> ScalarValue {
        ScalarValue::Decimal128(v, 38, crate::catalog::COST_SCALE)
    }

    #[test]
    fn an_array_gives_the_named_part_and_null_where_the_row_has_no_price() {
        let out = invoke(ColumnarValue::Array(parts()), "output_cost").unwrap();
        let ColumnarValue::Array(out) = out else {
            panic!("an array in gives an array out");
        };
        assert_eq!(out.data_type(), &args::cost_type());
        let got: Vec<ScalarValue> = (0..out.len())
            .map(|i| ScalarValue::try_from_array(&out, i).unwrap())
            .collect();
        assert_eq!(
            got,
            vec![decimal(Some(103)), decimal(None), decimal(Some(303))]
        );
    }

    #[test]
    fn a_scalar_gives_a_scalar_and_a_null_struct_gives_null() {
        let row = ScalarValue::try_from_array(&parts(), 2).unwrap();
        let out = invoke(ColumnarValue::Scalar(row), "input_cost").unwrap();
        assert!(matches!(out, ColumnarValue::Scalar(ref s) if *s == decimal(Some(300))));
        let unpriced = ScalarValue::try_from_array(&parts(), 1).unwrap();
        let out = invoke(ColumnarValue::Scalar(unpriced), "request_cost").unwrap();
        assert!(matches!(out, ColumnarValue::Scalar(ref s) if *s == decimal(None)));
        let untyped = invoke(ColumnarValue::Scalar(ScalarValue::Null), "input_cost").unwrap();
        assert!(matches!(untyped, ColumnarValue::Scalar(ref s) if *s == decimal(None)));
    }

    #[test]
    fn an_unknown_part_or_another_struct_is_a_plan_error() {
        let err = invoke(ColumnarValue::Array(parts()), "tax").unwrap_err();
        assert!(err.to_string().contains("no part named 'tax'"), "{err}");
        let other = DataType::Struct(vec![Field::new("a", DataType::Int64, true)].into());
        assert!(check_parts_type(&other).is_err());
        assert!(check_parts_type(&DataType::Struct(parts_fields())).is_ok());
    }
}

//! PostgreSQL's server-identity and catalog functions, as the clients call them.
//!
//! They are shims, not analytics: each is one [`Shim`] (a name, a return type and a plain
//! function of its arguments) rather than a `udfs/` crate entry, because they only make
//! sense behind the wire endpoint and most answer a constant. Every one is also registered
//! under its `pg_catalog.` name.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;

use super::{OWNER, PG_CATALOG};

/// A connection's value of a setting (lower-case name), `None` if there is no such setting.
pub type Setting = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// What a shim computes from its arguments.
type Eval = Arc<dyn Fn(&[ColumnarValue], usize) -> Result<ColumnarValue> + Send + Sync>;

/// A PostgreSQL function DataFusion lacks.
struct Shim {
    name: &'static str,
    aliases: Vec<String>,
    signature: Signature,
    returns: DataType,
    eval: Eval,
}

impl std::fmt::Debug for Shim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shim").field("name", &self.name).finish()
    }
}

impl PartialEq for Shim {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Shim {}

impl std::hash::Hash for Shim {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for Shim {
    fn name(&self) -> &str {
        self.name
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(self.returns.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        (self.eval)(&args.args, args.number_rows)
    }
}

/// Any arguments, or none: these functions ignore what they do not need.
fn any_args() -> Signature {
    Signature::one_of(
        vec![TypeSignature::Nullary, TypeSignature::VariadicAny],
        Volatility::Stable,
    )
}

fn shim(name: &'static str, returns: DataType, eval: Eval) -> ScalarUDF {
    ScalarUDF::new_from_impl(Shim {
        name,
        aliases: vec![format!("{PG_CATALOG}.{name}")],
        signature: any_args(),
        returns,
        eval,
    })
}

fn constant(name: &'static str, value: ScalarValue) -> ScalarUDF {
    let returns = value.data_type();
    shim(
        name,
        returns,
        Arc::new(move |_, _| Ok(ColumnarValue::Scalar(value.clone()))),
    )
}

fn text(value: &str) -> ScalarValue {
    ScalarValue::Utf8(Some(value.to_owned()))
}

/// `version()` as PostgreSQL words it, so drivers that parse it (SQLAlchemy) accept it.
pub fn version_string() -> String {
    format!(
        "PostgreSQL {} (SpendQL {}) on {}-linux, compiled by rustc, 64-bit",
        crate::server::SERVER_VERSION,
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    )
}

/// The functions that are the same in every session.
pub fn register(ctx: &SessionContext) {
    let truth = ScalarValue::Boolean(Some(true));
    let null_text = ScalarValue::Utf8(None);
    let udfs = [
        constant("version", text(&version_string())),
        constant("current_database", text(crate::engine::DATABASE)),
        constant("current_catalog", text(crate::engine::DATABASE)),
        constant("current_schema", text(crate::engine::SCHEMA)),
        constant("pg_get_userbyid", text(OWNER)),
        constant("pg_encoding_to_char", text("UTF8")),
        constant("pg_table_is_visible", truth.clone()),
        constant("pg_type_is_visible", truth.clone()),
        constant(
            "pg_relation_is_publishable",
            ScalarValue::Boolean(Some(false)),
        ),
        constant("pg_function_is_visible", truth.clone()),
        constant("has_table_privilege", truth.clone()),
        constant("has_schema_privilege", truth.clone()),
        constant("has_database_privilege", truth.clone()),
        constant("has_column_privilege", truth.clone()),
        constant("has_any_column_privilege", truth),
        constant("pg_get_expr", null_text.clone()),
        constant("pg_get_indexdef", null_text.clone()),
        constant("pg_get_constraintdef", null_text.clone()),
        shim(
            "pg_get_function_result",
            DataType::Utf8,
            Arc::new(|args, rows| proc_text(args, rows, |p| p.result.clone())),
        ),
        shim(
            "pg_get_function_arguments",
            DataType::Utf8,
            Arc::new(|args, rows| proc_text(args, rows, |p| p.arguments.clone())),
        ),
        shim(
            "pg_get_function_identity_arguments",
            DataType::Utf8,
            Arc::new(|args, rows| proc_text(args, rows, |p| p.arguments.clone())),
        ),
        constant("pg_get_function_sqlbody", null_text.clone()),
        shim("obj_description", DataType::Utf8, Arc::new(obj_description)),
        constant("col_description", null_text.clone()),
        constant("shobj_description", null_text),
        shim(
            "current_schemas",
            DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
            Arc::new(current_schemas),
        ),
        shim("format_type", DataType::Utf8, Arc::new(format_type)),
        // Sizes are not tracked per relation: unknown, so `\dt+` shows no size.
        constant("pg_table_size", ScalarValue::Int64(None)),
        constant("pg_relation_size", ScalarValue::Int64(None)),
        constant("pg_total_relation_size", ScalarValue::Int64(None)),
        shim("pg_size_pretty", DataType::Utf8, Arc::new(size_pretty)),
        shim("quote_ident", DataType::Utf8, Arc::new(quote_ident)),
        shim("to_regclass", DataType::Int64, Arc::new(to_regclass)),
        shim("to_regtype", DataType::Int64, Arc::new(to_regtype)),
        shim("format", DataType::Utf8, Arc::new(format)),
    ];
    for udf in udfs {
        ctx.register_udf(udf);
    }
    ctx.register_udf(super::time::timezone());
    ctx.register_udf(super::time::age());
}

/// The functions that answer for one connection: its user, its backend id and its settings
/// (`setting(name)` is the connection's value of a variable, `None` if there is none).
pub fn register_session(ctx: &SessionContext, user: &str, backend_pid: i32, setting: Setting) {
    for name in ["current_user", "session_user", "current_role", "user"] {
        ctx.register_udf(constant(name, text(user)));
    }
    ctx.register_udf(constant(
        "pg_backend_pid",
        ScalarValue::Int32(Some(backend_pid)),
    ));
    ctx.register_udf(shim(
        "current_setting",
        DataType::Utf8,
        Arc::new(move |args, rows| current_setting(args, rows, setting.as_ref())),
    ));
}

/// `current_setting(name [, missing_ok])`.
fn current_setting(
    args: &[ColumnarValue],
    rows: usize,
    setting: &(dyn Fn(&str) -> Option<String> + Send + Sync),
) -> Result<ColumnarValue> {
    let Some(name) = args.first() else {
        return exec_err!("current_setting(name) needs the setting's name");
    };
    let missing_ok = match args.get(1) {
        Some(ColumnarValue::Scalar(ScalarValue::Boolean(Some(b)))) => *b,
        _ => false,
    };
    let names = name.to_array(rows)?;
    let names = arrow::compute::cast(&names, &DataType::Utf8)?;
    let mut out = Vec::with_capacity(names.len());
    for name in names.as_string::<i32>() {
        out.push(match name {
            None => None,
            Some(name) => match setting(&name.to_ascii_lowercase()) {
                Some(value) => Some(value),
                None if missing_ok => None,
                None => return exec_err!("unrecognized configuration parameter \"{name}\""),
            },
        });
    }
    let array = StringArray::from(out);
    Ok(match name {
        ColumnarValue::Scalar(_) => ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?),
        ColumnarValue::Array(_) => ColumnarValue::Array(Arc::new(array)),
    })
}

/// `pg_size_pretty(bytes)`, PostgreSQL's units (bytes, kB, MB, GB, TB; 1024 apart).
fn size_pretty(args: &[ColumnarValue], rows: usize) -> Result<ColumnarValue> {
    let Some(bytes) = args.first() else {
        return exec_err!("pg_size_pretty(bytes) needs a size");
    };
    let scalar = matches!(bytes, ColumnarValue::Scalar(_));
    let sizes = arrow::compute::cast(&bytes.to_array(rows)?, &DataType::Int64)?;
    let sizes = sizes.as_primitive::<Int64Type>();
    let texts: StringArray = sizes
        .iter()
        .map(|size| {
            size.map(|mut n| {
                for unit in ["bytes", "kB", "MB", "GB"] {
                    if n.abs() < 10 * 1024 {
                        return format!("{n} {unit}");
                    }
                    n = (n + 512) / 1024;
                }
                format!("{n} TB")
            })
        })
        .collect();
    Ok(if scalar {
        ColumnarValue::Scalar(ScalarValue::try_from_array(&texts, 0)?)
    } else {
        ColumnarValue::Array(Arc::new(texts))
    })
}

/// The arguments as text columns of `rows` rows (NULLs stay NULL).
fn text_columns(args: &[ColumnarValue], rows: usize) -> Result<Vec<StringArray>> {
    args.iter()
        .map(|arg| {
            let array = arrow::compute::cast(&arg.to_array(rows)?, &DataType::Utf8)?;
            Ok(array.as_string::<i32>().clone())
        })
        .collect()
}

/// Scalar in, scalar out; otherwise a column.
fn columnar(args: &[ColumnarValue], out: StringArray) -> Result<ColumnarValue> {
    if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
    } else {
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// An identifier as SQL needs it: unchanged when it is a plain lower-case name, otherwise in
/// double quotes with inner quotes doubled.
fn identifier(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if plain {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// `to_regclass(x)`: an id stays itself; a name (`usage`, `public.usage`, `"Odd Name"`)
/// becomes its relation's id (a stable hash of the name: see `pgcompat::relation_oid`).
fn to_regclass(args: &[ColumnarValue], rows: usize) -> Result<ColumnarValue> {
    oid_by_name(args, rows, |name| Some(super::regclass(name)))
}

/// `to_regtype(name)`: the id of a type SpendQL sends (`numeric`, `timestamp with time
/// zone`, `pg_catalog.text`), NULL for any other (psycopg asks for `hstore` at connect).
fn to_regtype(args: &[ColumnarValue], rows: usize) -> Result<ColumnarValue> {
    oid_by_name(args, rows, super::type_oid)
}

/// An id stays itself; a name becomes `resolve(name)`.
fn oid_by_name(
    args: &[ColumnarValue],
    rows: usize,
    resolve: fn(&str) -> Option<i64>,
) -> Result<ColumnarValue> {
    let Some(arg) = args.first() else {
        return exec_err!("this function needs a name");
    };
    let array = arg.to_array(rows)?;
    let out: Int64Array = if array.data_type().is_integer() {
        arrow::compute::cast(&array, &DataType::Int64)?
            .as_primitive::<Int64Type>()
            .clone()
    } else {
        let names = arrow::compute::cast(&array, &DataType::Utf8)?;
        names
            .as_string::<i32>()
            .iter()
            .map(|name| name.and_then(resolve))
            .collect()
    };
    Ok(match arg {
        ColumnarValue::Scalar(_) => ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?),
        ColumnarValue::Array(_) => ColumnarValue::Array(Arc::new(out)),
    })
}

/// Text looked up by the object id in `args[0]` (NULL where `lookup` has none).
fn text_by_oid(
    args: &[ColumnarValue],
    rows: usize,
    lookup: impl Fn(i64) -> Option<String>,
) -> Result<ColumnarValue> {
    let Some(oid) = args.first() else {
        return exec_err!("this function needs an object id");
    };
    let ids = arrow::compute::cast(&oid.to_array(rows)?, &DataType::Int64)?;
    let out: StringArray = ids
        .as_primitive::<Int64Type>()
        .iter()
        .map(|id| id.and_then(&lookup))
        .collect();
    Ok(match oid {
        ColumnarValue::Scalar(_) => ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?),
        ColumnarValue::Array(_) => ColumnarValue::Array(Arc::new(out)),
    })
}

/// A text about the SpendQL function with the id in `args[0]`.
fn proc_text(
    args: &[ColumnarValue],
    rows: usize,
    field: fn(&super::procs::Proc) -> String,
) -> Result<ColumnarValue> {
    text_by_oid(args, rows, |oid| super::procs::by_oid(oid).map(field))
}

/// `obj_description(oid [, catalog])`: a built-in table's, view's or function's description.
fn obj_description(args: &[ColumnarValue], rows: usize) -> Result<ColumnarValue> {
    text_by_oid(args, rows, |oid| super::descriptions().get(&oid).cloned())
}

/// `quote_ident(text)`.
fn quote_ident(args: &[ColumnarValue], rows: usize) -> Result<ColumnarValue> {
    let columns = text_columns(args, rows)?;
    let Some(names) = columns.first() else {
        return exec_err!("quote_ident(text) needs a name");
    };
    let out: StringArray = names.iter().map(|n| n.map(identifier)).collect();
    columnar(args, out)
}

/// `format(pattern, args...)` with `%s` (text, NULL as empty), `%I` (identifier), `%L`
/// (literal, NULL as NULL) and `%%`.
fn format(args: &[ColumnarValue], rows: usize) -> Result<ColumnarValue> {
    let columns = text_columns(args, rows)?;
    let Some((patterns, values)) = columns.split_first() else {
        return exec_err!("format(pattern, ...) needs a pattern");
    };
    let len = patterns.len();
    let mut out = Vec::with_capacity(len);
    for row in 0..len {
        if patterns.is_null(row) {
            out.push(None);
            continue;
        }
        let pattern = patterns.value(row);
        let mut text = String::with_capacity(pattern.len());
        let mut next = 0;
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                text.push(c);
                continue;
            }
            let spec = chars.next();
            if spec == Some('%') {
                text.push('%');
                continue;
            }
            let Some(column) = values.get(next) else {
                return exec_err!("format: too few arguments for {pattern:?}");
            };
            next += 1;
            let value = (!column.is_null(row)).then(|| column.value(row));
            match (spec, value) {
                (Some('s'), v) => text.push_str(v.unwrap_or("")),
                (Some('I'), Some(v)) => text.push_str(&identifier(v)),
                (Some('I'), None) => {
                    return exec_err!("format: a NULL cannot be an identifier (%I)");
                }
                (Some('L'), Some(v)) => text.push_str(&format!("'{}'", v.replace('\'', "''"))),
                (Some('L'), None) => text.push_str("NULL"),
                (other, _) => {
                    return exec_err!("format: unsupported conversion %{}", other.unwrap_or(' '));
                }
            }
        }
        out.push(Some(text));
    }
    columnar(args, StringArray::from(out))
}

/// `current_schemas(include_implicit)`: the search path.
fn current_schemas(args: &[ColumnarValue], _rows: usize) -> Result<ColumnarValue> {
    let implicit = matches!(
        args.first(),
        Some(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))
    );
    let mut names = Vec::new();
    if implicit {
        names.push(text(PG_CATALOG));
    }
    names.push(text(crate::engine::SCHEMA));
    Ok(ColumnarValue::Scalar(ScalarValue::List(
        ScalarValue::new_list_nullable(&names, &DataType::Utf8),
    )))
}

/// `format_type(type_oid, typmod)`.
fn format_type(args: &[ColumnarValue], rows: usize) -> Result<ColumnarValue> {
    let Some(oid) = args.first() else {
        return exec_err!("format_type(type_oid, typmod) needs a type");
    };
    let scalar = matches!(oid, ColumnarValue::Scalar(_));
    let oids = arrow::compute::cast(&oid.to_array(rows)?, &DataType::Int64)?;
    let oids = oids.as_primitive::<Int64Type>();
    let typmods = match args.get(1) {
        Some(m) => arrow::compute::cast(&m.to_array(rows)?, &DataType::Int64)?,
        None => Arc::new(Int64Array::new_null(oids.len())),
    };
    let typmods = typmods.as_primitive::<Int64Type>();
    let names: StringArray = (0..oids.len())
        .map(|i| {
            if oids.is_null(i) {
                return None;
            }
            let typmod = (!typmods.is_null(i)).then(|| typmods.value(i));
            Some(super::format_type(oids.value(i), typmod).unwrap_or_else(|| "???".to_owned()))
        })
        .collect();
    Ok(if scalar {
        ColumnarValue::Scalar(ScalarValue::try_from_array(&names, 0)?)
    } else {
        ColumnarValue::Array(Arc::new(names))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar_text(out: ColumnarValue) -> Option<String> {
        match out {
            ColumnarValue::Scalar(ScalarValue::Utf8(v)) => v,
            other => panic!("expected text, got {other:?}"),
        }
    }

    fn texts(values: &[Option<&str>]) -> Vec<ColumnarValue> {
        values
            .iter()
            .map(|v| ColumnarValue::Scalar(ScalarValue::Utf8(v.map(str::to_owned))))
            .collect()
    }

    #[test]
    fn format_and_quote_ident_quote_like_postgres() {
        let args = texts(&[
            Some("%I.%I = %L, %s%%"),
            Some("public"),
            Some("My \"T\""),
            Some("it's"),
            None,
        ]);
        assert_eq!(
            scalar_text(format(&args, 1).expect("format")).as_deref(),
            Some("public.\"My \"\"T\"\"\" = 'it''s', %")
        );
        assert!(format(&texts(&[Some("%s %s"), Some("one")]), 1).is_err());
        assert!(format(&texts(&[Some("%I"), None]), 1).is_err());
        assert_eq!(
            scalar_text(quote_ident(&texts(&[Some("usage")]), 1).expect("ident")).as_deref(),
            Some("usage")
        );
        assert_eq!(
            scalar_text(quote_ident(&texts(&[Some("Spend 2026")]), 1).expect("ident")).as_deref(),
            Some("\"Spend 2026\"")
        );
        let column = ColumnarValue::Array(Arc::new(StringArray::from(vec![Some("a"), None])));
        let out = quote_ident(&[column], 2).expect("array");
        let ColumnarValue::Array(out) = out else {
            panic!("an array in, an array out");
        };
        assert_eq!(out.len(), 2);
        assert!(out.is_null(1));
    }

    #[test]
    fn to_regtype_knows_the_types_spendql_sends() {
        let numeric = to_regtype(&texts(&[Some("numeric")]), 1).expect("numeric");
        let expected = i64::from(pgwire::api::Type::NUMERIC.oid());
        assert!(
            matches!(numeric, ColumnarValue::Scalar(ScalarValue::Int64(Some(v))) if v == expected)
        );
        let hstore = to_regtype(&texts(&[Some("hstore")]), 1).expect("hstore");
        assert!(matches!(
            hstore,
            ColumnarValue::Scalar(ScalarValue::Int64(None))
        ));
    }

    #[test]
    fn to_regclass_keeps_ids_and_resolves_names() {
        let id = super::super::relation_oid("public", "usage");
        let by_name = to_regclass(&texts(&[Some("public.usage")]), 1).expect("name");
        let unqualified = to_regclass(&texts(&[Some("usage")]), 1).expect("name");
        let by_id =
            to_regclass(&[ColumnarValue::Scalar(ScalarValue::Int64(Some(id)))], 1).expect("id");
        for out in [by_name, unqualified, by_id] {
            assert!(matches!(out, ColumnarValue::Scalar(ScalarValue::Int64(Some(v))) if v == id));
        }
    }
}

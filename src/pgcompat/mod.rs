//! What PostgreSQL clients expect beyond SQL: the `pg_catalog` tables, the server-identity
//! and catalog functions (`version()`, `current_setting()`, `format_type()`, ...), and a
//! rewrite of PostgreSQL-only syntax that DataFusion's planner does not know
//! (`pg_catalog.`-qualified functions, `OPERATOR(pg_catalog.~)`, `COLLATE`, `::regclass`).
//!
//! - [`catalog`]: the `pg_catalog` schema, computed from the live catalog.
//! - [`functions`]: the functions, registered in every session.
//! - [`rewrite`]: the syntax rewrite, applied to every parsed statement from a client.

pub mod catalog;
pub mod functions;
pub mod information_schema;
pub mod procs;
pub mod rewrite;
pub mod time;

use pgwire::api::Type;

/// The schema holding PostgreSQL's system tables.
pub const PG_CATALOG: &str = "pg_catalog";
/// The SQL-standard catalog schema, with PostgreSQL's type names.
pub const INFORMATION_SCHEMA: &str = "information_schema";
/// The owner every object reports (PostgreSQL's bootstrap superuser has OID 10).
pub const OWNER: &str = "spendql";
const OWNER_OID: i64 = 10;
const DATABASE_OID: i64 = 16_384;
const PG_CATALOG_OID: i64 = 11;
const PUBLIC_OID: i64 = 2_200;
const INFORMATION_SCHEMA_OID: i64 = 13_000;
/// Relation ids start here, as user objects do in PostgreSQL.
const FIRST_USER_OID: i64 = 16_400;

/// A schema's id: PostgreSQL's for its own schemas, else a stable hash of the name.
pub fn namespace_oid(name: &str) -> i64 {
    match name {
        PG_CATALOG => PG_CATALOG_OID,
        crate::engine::SCHEMA => PUBLIC_OID,
        INFORMATION_SCHEMA => INFORMATION_SCHEMA_OID,
        other => stable_oid(other),
    }
}

/// The descriptions of the built-in tables, views and functions (`obj_description`,
/// `pg_description`), by object id: the tables' from `schema.rs`, the views' from the first
/// sentence of the comment that opens their SQL file, the functions' from their
/// documentation (`procs`).
pub fn descriptions() -> &'static std::collections::HashMap<i64, String> {
    static DESCRIPTIONS: std::sync::LazyLock<std::collections::HashMap<i64, String>> =
        std::sync::LazyLock::new(|| {
            let schema = crate::engine::SCHEMA;
            let tables = crate::schema::tables().iter().filter_map(|table| {
                crate::schema::description(table.name)
                    .map(|text| (relation_oid(schema, table.name), text.to_owned()))
            });
            let views = crate::engine::VIEWS
                .iter()
                .map(|(name, sql)| (relation_oid(schema, name), view_description(name, sql)));
            let functions = procs::procs()
                .iter()
                .map(|proc| (proc.oid, proc.description.clone()));
            tables.chain(views).chain(functions).collect()
        });
    &DESCRIPTIONS
}

/// The first sentence of a view's opening comment, without its `name:` prefix.
fn view_description(name: &str, sql: &str) -> String {
    let comment = sql
        .lines()
        .map_while(|line| line.strip_prefix("--"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    let text = comment
        .strip_prefix(&format!("{name}:"))
        .unwrap_or(&comment)
        .trim();
    let sentence = match text.find(". ") {
        Some(end) => &text[..=end],
        None => text,
    };
    sentence.trim().to_owned()
}

/// The id a relation name means, as `'name'::regclass` resolves it: an unqualified name of
/// a catalog table is that table (`'pg_class'::regclass`), any other unqualified name is in
/// `public`.
pub fn regclass(name: &str) -> i64 {
    let unquote = |s: &str| s.trim().trim_matches('"').to_owned();
    match name.split_once('.') {
        Some((schema, table)) => relation_oid(&unquote(schema), &unquote(table)),
        None if catalog::is_table(&unquote(name)) => relation_oid(PG_CATALOG, &unquote(name)),
        None => relation_oid(crate::engine::SCHEMA, &unquote(name)),
    }
}

/// A table's or view's id: a stable hash of `schema.name`, so it means the same relation in
/// every query, connection and run.
pub fn relation_oid(schema: &str, name: &str) -> i64 {
    stable_oid(&format!("{schema}.{name}"))
}

fn stable_oid(key: &str) -> i64 {
    let span = i64::from(i32::MAX) - FIRST_USER_OID;
    let hash = xxhash_rust::xxh3::xxh3_64(key.as_bytes());
    FIRST_USER_OID + (hash % span.unsigned_abs()) as i64
}

/// The types `pg_type` lists: every type SpendQL sends, and their arrays.
pub const TYPES: &[Type] = &[
    Type::BOOL,
    Type::BYTEA,
    Type::CHAR,
    Type::NAME,
    Type::INT8,
    Type::INT2,
    Type::INT4,
    Type::TEXT,
    Type::OID,
    Type::JSON,
    Type::FLOAT4,
    Type::FLOAT8,
    Type::VARCHAR,
    Type::DATE,
    Type::TIME,
    Type::TIMESTAMP,
    Type::TIMESTAMPTZ,
    Type::INTERVAL,
    Type::NUMERIC,
    Type::UUID,
    Type::JSONB,
    Type::RECORD,
    Type::BOOL_ARRAY,
    Type::INT2_ARRAY,
    Type::INT4_ARRAY,
    Type::INT8_ARRAY,
    Type::TEXT_ARRAY,
    Type::FLOAT4_ARRAY,
    Type::FLOAT8_ARRAY,
    Type::NUMERIC_ARRAY,
    Type::VARCHAR_ARRAY,
    Type::DATE_ARRAY,
    Type::TIMESTAMP_ARRAY,
    Type::TIMESTAMPTZ_ARRAY,
    Type::INTERVAL_ARRAY,
    Type::BYTEA_ARRAY,
];

/// `pg_type.typcategory` and `typlen` of a type.
fn type_shape(ty: &Type) -> (&'static str, i64) {
    match *ty {
        Type::BOOL => ("B", 1),
        Type::CHAR => ("S", 1),
        Type::INT2 => ("N", 2),
        Type::INT4 | Type::OID | Type::FLOAT4 => ("N", 4),
        Type::INT8 | Type::FLOAT8 => ("N", 8),
        Type::NUMERIC => ("N", -1),
        Type::NAME => ("S", 64),
        Type::TEXT | Type::VARCHAR => ("S", -1),
        Type::DATE => ("D", 4),
        Type::TIME | Type::TIMESTAMP | Type::TIMESTAMPTZ => ("D", 8),
        Type::INTERVAL => ("T", 16),
        Type::UUID => ("U", 16),
        Type::RECORD => ("P", -1),
        Type::BYTEA | Type::JSON | Type::JSONB => ("U", -1),
        _ => ("A", -1),
    }
}

/// A type's OID from its name (`timestamptz`, `pg_catalog.int8`, `timestamp with time zone`).
pub fn type_oid(name: &str) -> Option<i64> {
    let name = name.trim().to_ascii_lowercase();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
    TYPES
        .iter()
        .find(|ty| {
            ty.name() == name
                || format_type(i64::from(ty.oid()), None).is_some_and(|sql| sql == name)
        })
        .map(|ty| i64::from(ty.oid()))
}

/// `format_type(oid, typmod)`: the SQL name of a type, as `\d` shows it.
pub fn format_type(oid: i64, typmod: Option<i64>) -> Option<String> {
    let ty = TYPES.iter().find(|t| i64::from(t.oid()) == oid)?;
    let name = match *ty {
        Type::BOOL => "boolean".to_owned(),
        Type::INT2 => "smallint".to_owned(),
        Type::INT4 => "integer".to_owned(),
        Type::INT8 => "bigint".to_owned(),
        Type::FLOAT4 => "real".to_owned(),
        Type::FLOAT8 => "double precision".to_owned(),
        Type::VARCHAR => "character varying".to_owned(),
        Type::CHAR => "\"char\"".to_owned(),
        Type::TIMESTAMP => "timestamp without time zone".to_owned(),
        Type::TIMESTAMPTZ => "timestamp with time zone".to_owned(),
        Type::TIME => "time without time zone".to_owned(),
        Type::NUMERIC => match typmod.filter(|m| *m >= 4) {
            Some(m) => format!("numeric({},{})", (m - 4) >> 16, (m - 4) & 0xffff),
            None => "numeric".to_owned(),
        },
        Type::BOOL_ARRAY => "boolean[]".to_owned(),
        Type::INT2_ARRAY => "smallint[]".to_owned(),
        Type::INT4_ARRAY => "integer[]".to_owned(),
        Type::INT8_ARRAY => "bigint[]".to_owned(),
        Type::FLOAT4_ARRAY => "real[]".to_owned(),
        Type::FLOAT8_ARRAY => "double precision[]".to_owned(),
        Type::TIMESTAMPTZ_ARRAY => "timestamp with time zone[]".to_owned(),
        Type::TIMESTAMP_ARRAY => "timestamp without time zone[]".to_owned(),
        _ if ty.name().starts_with('_') => format!("{}[]", &ty.name()[1..]),
        _ => ty.name().to_owned(),
    };
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_in_the_user_range() {
        let a = relation_oid("public", "usage");
        assert_eq!(a, relation_oid("public", "usage"));
        assert_ne!(a, relation_oid("public", "spend"));
        assert!((FIRST_USER_OID..i64::from(i32::MAX)).contains(&a));
        assert_eq!(namespace_oid("public"), 2200);
        assert_eq!(regclass("usage"), a);
        assert_eq!(regclass("\"public\".\"usage\""), a);
        assert_eq!(regclass("pg_class"), relation_oid("pg_catalog", "pg_class"));
    }

    #[test]
    fn every_built_in_table_view_and_function_has_a_description() {
        let descriptions = descriptions();
        let spend = &descriptions[&relation_oid("public", "spend")];
        assert_eq!(spend, "every usage row with its cost.");
        assert!(descriptions.contains_key(&relation_oid("public", "usage")));
        assert_eq!(
            descriptions.len(),
            crate::schema::tables().len() + crate::engine::VIEWS.len() + procs::procs().len()
        );
        assert!(descriptions.values().all(|d| !d.is_empty()));
    }

    #[test]
    fn types_format_like_postgres() {
        assert_eq!(
            format_type(1184, None).as_deref(),
            Some("timestamp with time zone")
        );
        let typmod = ((38 << 16) | 12) + 4;
        assert_eq!(
            format_type(1700, Some(typmod)).as_deref(),
            Some("numeric(38,12)")
        );
        assert_eq!(format_type(1009, None).as_deref(), Some("text[]"));
        assert_eq!(format_type(-5, None), None);
        assert_eq!(type_oid("timestamptz"), Some(1184));
        assert_eq!(type_oid("pg_catalog.int8"), Some(20));
        assert_eq!(type_oid("double precision"), Some(701));
        assert_eq!(type_oid("nonsense"), None);
    }
}

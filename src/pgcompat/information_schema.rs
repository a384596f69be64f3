//! `information_schema` as PostgreSQL has it: PostgreSQL's type names (`data_type` like
//! `timestamp with time zone`, `udt_name` like `timestamptz`), precision and scale, `YES`/`NO`
//! flags. Grafana's query builder and Metabase's field sync read these columns to decide
//! what a column is; DataFusion's own information_schema (Arrow type names, no `udt_name`)
//! is therefore turned off, and this one is built from the live catalog like `pg_catalog`.

use std::sync::{Arc, Weak};

use arrow::datatypes::DataType;
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::common::Result;
use pgwire::api::Type;

use super::catalog::{Cell, Relation, Row, Ty, mem_table, relations, t};
use super::{INFORMATION_SCHEMA, OWNER, PG_CATALOG};
use crate::engine::DATABASE;
use crate::server::encode::pg_type;

const TABLES: &[(&str, &[(&str, Ty)])] = {
    use Ty::*;
    &[
        (
            "schemata",
            &[
                ("catalog_name", Text),
                ("schema_name", Text),
                ("schema_owner", Text),
                ("default_character_set_catalog", Text),
                ("default_character_set_schema", Text),
                ("default_character_set_name", Text),
                ("sql_path", Text),
            ],
        ),
        (
            "tables",
            &[
                ("table_catalog", Text),
                ("table_schema", Text),
                ("table_name", Text),
                ("table_type", Text),
                ("self_referencing_column_name", Text),
                ("reference_generation", Text),
                ("user_defined_type_catalog", Text),
                ("user_defined_type_schema", Text),
                ("user_defined_type_name", Text),
                ("is_insertable_into", Text),
                ("is_typed", Text),
                ("commit_action", Text),
            ],
        ),
        (
            "columns",
            &[
                ("table_catalog", Text),
                ("table_schema", Text),
                ("table_name", Text),
                ("column_name", Text),
                ("ordinal_position", Int),
                ("column_default", Text),
                ("is_nullable", Text),
                ("data_type", Text),
                ("character_maximum_length", NullableInt),
                ("character_octet_length", NullableInt),
                ("numeric_precision", NullableInt),
                ("numeric_precision_radix", NullableInt),
                ("numeric_scale", NullableInt),
                ("datetime_precision", NullableInt),
                ("interval_type", Text),
                ("udt_catalog", Text),
                ("udt_schema", Text),
                ("udt_name", Text),
                ("dtd_identifier", Text),
                ("is_self_referencing", Text),
                ("is_identity", Text),
                ("identity_generation", Text),
                ("is_generated", Text),
                ("generation_expression", Text),
                ("is_updatable", Text),
                ("collation_name", Text),
            ],
        ),
        (
            "views",
            &[
                ("table_catalog", Text),
                ("table_schema", Text),
                ("table_name", Text),
                ("view_definition", Text),
                ("check_option", Text),
                ("is_updatable", Text),
                ("is_insertable_into", Text),
            ],
        ),
        (
            "table_constraints",
            &[
                ("constraint_catalog", Text),
                ("constraint_schema", Text),
                ("constraint_name", Text),
                ("table_catalog", Text),
                ("table_schema", Text),
                ("table_name", Text),
                ("constraint_type", Text),
                ("is_deferrable", Text),
                ("initially_deferred", Text),
                ("enforced", Text),
            ],
        ),
        (
            "key_column_usage",
            &[
                ("constraint_catalog", Text),
                ("constraint_schema", Text),
                ("constraint_name", Text),
                ("table_catalog", Text),
                ("table_schema", Text),
                ("table_name", Text),
                ("column_name", Text),
                ("ordinal_position", Int),
                ("position_in_unique_constraint", NullableInt),
            ],
        ),
        (
            "referential_constraints",
            &[
                ("constraint_catalog", Text),
                ("constraint_schema", Text),
                ("constraint_name", Text),
                ("unique_constraint_catalog", Text),
                ("unique_constraint_schema", Text),
                ("unique_constraint_name", Text),
                ("match_option", Text),
                ("update_rule", Text),
                ("delete_rule", Text),
            ],
        ),
        (
            "routines",
            &[
                ("specific_catalog", Text),
                ("specific_schema", Text),
                ("specific_name", Text),
                ("routine_catalog", Text),
                ("routine_schema", Text),
                ("routine_name", Text),
                ("routine_type", Text),
                ("data_type", Text),
            ],
        ),
    ]
};

/// The `information_schema` schema of the `spendql` database.
#[derive(Debug)]
pub struct InformationSchema {
    database: Weak<dyn CatalogProvider>,
}

impl InformationSchema {
    pub fn new(database: Weak<dyn CatalogProvider>) -> Self {
        InformationSchema { database }
    }

    async fn rows(&self, name: &str) -> Result<Vec<Row>> {
        let relations = relations(&self.database).await?;
        let yes_no = |b: bool| t(if b { "YES" } else { "NO" });
        Ok(match name {
            "schemata" => [crate::engine::SCHEMA, PG_CATALOG, INFORMATION_SCHEMA]
                .into_iter()
                .map(|schema| {
                    vec![
                        ("catalog_name", t(DATABASE)),
                        ("schema_name", t(schema)),
                        ("schema_owner", t(OWNER)),
                    ]
                })
                .collect(),
            "tables" => relations
                .iter()
                .map(|r| {
                    let table = r.kind == "r";
                    vec![
                        ("table_catalog", t(DATABASE)),
                        ("table_schema", t(&r.schema)),
                        ("table_name", t(&r.name)),
                        ("table_type", t(if table { "BASE TABLE" } else { "VIEW" })),
                        ("is_insertable_into", yes_no(table)),
                        ("is_typed", t("NO")),
                    ]
                })
                .collect(),
            "views" => relations
                .iter()
                .filter(|r| r.kind == "v")
                .map(|r| {
                    vec![
                        ("table_catalog", t(DATABASE)),
                        ("table_schema", t(&r.schema)),
                        ("table_name", t(&r.name)),
                        ("check_option", t("NONE")),
                        ("is_updatable", t("NO")),
                        ("is_insertable_into", t("NO")),
                    ]
                })
                .collect(),
            "columns" => relations.iter().flat_map(column_rows).collect(),
            _ => Vec::new(),
        })
    }
}

fn column_rows(relation: &Relation) -> Vec<Row> {
    relation
        .columns
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let ty = pg_type(field.data_type());
            let mut row = vec![
                ("table_catalog", t(DATABASE)),
                ("table_schema", t(&relation.schema)),
                ("table_name", t(&relation.name)),
                ("column_name", t(field.name())),
                ("ordinal_position", Cell::I(i as i64 + 1)),
                (
                    "is_nullable",
                    t(if field.is_nullable() { "YES" } else { "NO" }),
                ),
                ("data_type", t(data_type_name(&ty))),
                ("udt_catalog", t(DATABASE)),
                ("udt_schema", t(PG_CATALOG)),
                ("udt_name", t(ty.name())),
                ("dtd_identifier", t((i + 1).to_string())),
                ("is_self_referencing", t("NO")),
                ("is_identity", t("NO")),
                ("is_generated", t("NEVER")),
                (
                    "is_updatable",
                    t(if relation.kind == "r" { "YES" } else { "NO" }),
                ),
            ];
            row.extend(numeric_facets(field.data_type()));
            if let Some(default) = column_default(relation, field.name()) {
                row.push(("column_default", t(default)));
            }
            row
        })
        .collect()
}

/// A built-in table's column default, as PostgreSQL prints one.
fn column_default(relation: &Relation, column: &str) -> Option<String> {
    use crate::schema::ColumnDefault;
    if relation.schema != crate::engine::SCHEMA {
        return None;
    }
    let default = crate::schema::table_def(&relation.name)?.default_for(column)?;
    Some(match default {
        ColumnDefault::Int(n) => n.to_string(),
        ColumnDefault::Text(text) => format!("'{}'::text", text.replace('\'', "''")),
        ColumnDefault::Now => "now()".to_owned(),
    })
}

/// `information_schema.columns.data_type`: the SQL name, `ARRAY` for arrays.
fn data_type_name(ty: &Type) -> String {
    if ty.name().starts_with('_') {
        return "ARRAY".to_owned();
    }
    match super::format_type(i64::from(ty.oid()), None) {
        Some(name) => name,
        None if *ty == Type::RECORD => "record".to_owned(),
        None => ty.name().to_owned(),
    }
}

/// Precision, radix, scale and datetime precision, as PostgreSQL reports them.
fn numeric_facets(dt: &DataType) -> Vec<(&'static str, Cell)> {
    match dt {
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => vec![
            ("numeric_precision", Cell::I(i64::from(*p))),
            ("numeric_precision_radix", Cell::I(10)),
            ("numeric_scale", Cell::I(i64::from(*s))),
        ],
        DataType::Int16 | DataType::Int8 | DataType::UInt8 => bits(16),
        DataType::Int32 | DataType::UInt16 => bits(32),
        DataType::Int64 | DataType::UInt32 => bits(64),
        DataType::Float32 => vec![
            ("numeric_precision", Cell::I(24)),
            ("numeric_precision_radix", Cell::I(2)),
        ],
        DataType::Float64 => vec![
            ("numeric_precision", Cell::I(53)),
            ("numeric_precision_radix", Cell::I(2)),
        ],
        DataType::Timestamp(..) | DataType::Time64(_) | DataType::Time32(_) => {
            vec![("datetime_precision", Cell::I(6))]
        }
        DataType::Date32 | DataType::Date64 => vec![("datetime_precision", Cell::I(0))],
        _ => Vec::new(),
    }
}

fn bits(precision: i64) -> Vec<(&'static str, Cell)> {
    vec![
        ("numeric_precision", Cell::I(precision)),
        ("numeric_precision_radix", Cell::I(2)),
        ("numeric_scale", Cell::I(0)),
    ]
}

#[async_trait]
impl SchemaProvider for InformationSchema {
    fn table_names(&self) -> Vec<String> {
        TABLES.iter().map(|(name, _)| (*name).to_owned()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some((_, columns)) = TABLES.iter().find(|(n, _)| *n == name) else {
            return Ok(None);
        };
        mem_table(columns, &self.rows(name).await?).map(Some)
    }

    fn table_exist(&self, name: &str) -> bool {
        TABLES.iter().any(|(n, _)| *n == name)
    }
}

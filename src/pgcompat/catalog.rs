//! The `pg_catalog` schema: the PostgreSQL system tables clients read to list and describe
//! objects (psql's `\dt`, `\d`, `\df`, `\l`; drivers' metadata calls), computed from the live
//! DataFusion catalog each time a query plans.
//!
//! Object ids are stable hashes of the object's schema and name, not counters, so an id a
//! client read in one query (psql's `\d` looks a table up, then asks for its columns by id)
//! means the same object in the next, in any connection, after a restart. Types use
//! PostgreSQL's own OIDs. Tables SpendQL has no equivalent for (indexes, constraints,
//! triggers, ...) exist with their columns and no rows, so the queries that join them work.

use std::sync::{Arc, Weak};

use arrow::array::{ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, MemTable, SchemaProvider, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::TableType;

use super::{
    INFORMATION_SCHEMA_OID, OWNER, PG_CATALOG_OID, PUBLIC_OID, namespace_oid, relation_oid,
};
use crate::server::encode::pg_type;

/// Column types of the emulated tables.
#[derive(Clone, Copy)]
pub(super) enum Ty {
    Int,
    /// An integer that is NULL where a row does not give it (information_schema's facets).
    NullableInt,
    Text,
    Bool,
    Float,
    /// A text array, always NULL here (access lists, options).
    TextList,
}

/// A value of a row; columns a row does not name are 0, false, 0.0 or NULL text.
pub(super) enum Cell {
    I(i64),
    T(String),
    B(bool),
}

pub(super) type Row = Vec<(&'static str, Cell)>;

pub(super) fn t(s: impl Into<String>) -> Cell {
    Cell::T(s.into())
}

/// The emulated tables and their columns (the subset of PostgreSQL 16's that clients read).
const TABLES: &[(&str, &[(&str, Ty)])] = {
    use Ty::*;
    &[
        (
            "pg_namespace",
            &[
                ("oid", Int),
                ("nspname", Text),
                ("nspowner", Int),
                ("nspacl", TextList),
            ],
        ),
        (
            "pg_class",
            &[
                ("oid", Int),
                ("relname", Text),
                ("relnamespace", Int),
                ("reltype", Int),
                ("reloftype", Int),
                ("relowner", Int),
                ("relam", Int),
                ("relfilenode", Int),
                ("reltablespace", Int),
                ("relpages", Int),
                ("reltuples", Float),
                ("relallvisible", Int),
                ("reltoastrelid", Int),
                ("relhasindex", Bool),
                ("relisshared", Bool),
                ("relpersistence", Text),
                ("relkind", Text),
                ("relnatts", Int),
                ("relchecks", Int),
                ("relhasrules", Bool),
                ("relhastriggers", Bool),
                ("relhassubclass", Bool),
                ("relrowsecurity", Bool),
                ("relforcerowsecurity", Bool),
                ("relispopulated", Bool),
                ("relreplident", Text),
                ("relispartition", Bool),
                ("relrewrite", Int),
                ("relacl", TextList),
                ("reloptions", TextList),
                ("relpartbound", Text),
            ],
        ),
        (
            "pg_attribute",
            &[
                ("attrelid", Int),
                ("attname", Text),
                ("atttypid", Int),
                ("attlen", Int),
                ("attnum", Int),
                ("attndims", Int),
                ("atttypmod", Int),
                ("attbyval", Bool),
                ("attalign", Text),
                ("attstorage", Text),
                ("attcompression", Text),
                ("attnotnull", Bool),
                ("atthasdef", Bool),
                ("atthasmissing", Bool),
                ("attidentity", Text),
                ("attgenerated", Text),
                ("attisdropped", Bool),
                ("attislocal", Bool),
                ("attinhcount", Int),
                ("attcollation", Int),
                ("attstattarget", Int),
                ("attacl", TextList),
                ("attoptions", TextList),
            ],
        ),
        (
            "pg_type",
            &[
                ("oid", Int),
                ("typname", Text),
                ("typnamespace", Int),
                ("typowner", Int),
                ("typlen", Int),
                ("typbyval", Bool),
                ("typtype", Text),
                ("typcategory", Text),
                ("typispreferred", Bool),
                ("typisdefined", Bool),
                ("typdelim", Text),
                ("typrelid", Int),
                ("typelem", Int),
                ("typarray", Int),
                ("typinput", Text),
                ("typoutput", Text),
                ("typreceive", Text),
                ("typsend", Text),
                ("typalign", Text),
                ("typstorage", Text),
                ("typnotnull", Bool),
                ("typbasetype", Int),
                ("typtypmod", Int),
                ("typndims", Int),
                ("typcollation", Int),
                ("typdefault", Text),
                ("typacl", TextList),
            ],
        ),
        (
            "pg_database",
            &[
                ("oid", Int),
                ("datname", Text),
                ("datdba", Int),
                ("encoding", Int),
                ("datlocprovider", Text),
                ("datistemplate", Bool),
                ("datallowconn", Bool),
                ("datconnlimit", Int),
                ("dattablespace", Int),
                ("datcollate", Text),
                ("datctype", Text),
                ("daticulocale", Text),
                ("daticurules", Text),
                ("datcollversion", Text),
                ("datacl", TextList),
            ],
        ),
        (
            "pg_proc",
            &[
                ("oid", Int),
                ("proname", Text),
                ("pronamespace", Int),
                ("proowner", Int),
                ("prolang", Int),
                ("procost", Float),
                ("prorows", Float),
                ("provariadic", Int),
                ("prokind", Text),
                ("prosecdef", Bool),
                ("proleakproof", Bool),
                ("proisstrict", Bool),
                ("proretset", Bool),
                ("provolatile", Text),
                ("proparallel", Text),
                ("pronargs", Int),
                ("pronargdefaults", Int),
                ("prorettype", Int),
                ("proargtypes", Text),
                ("proargnames", TextList),
                ("prosrc", Text),
                ("proacl", TextList),
            ],
        ),
        (
            "pg_sequence",
            &[
                ("seqrelid", Int),
                ("seqtypid", Int),
                ("seqstart", Int),
                ("seqincrement", Int),
                ("seqmax", Int),
                ("seqmin", Int),
                ("seqcache", Int),
                ("seqcycle", Bool),
            ],
        ),
        (
            "pg_language",
            &[
                ("oid", Int),
                ("lanname", Text),
                ("lanowner", Int),
                ("lanispl", Bool),
                ("lanpltrusted", Bool),
            ],
        ),
        (
            "pg_am",
            &[
                ("oid", Int),
                ("amname", Text),
                ("amhandler", Text),
                ("amtype", Text),
            ],
        ),
        (
            "pg_description",
            &[
                ("objoid", Int),
                ("classoid", Int),
                ("objsubid", Int),
                ("description", Text),
            ],
        ),
        (
            "pg_roles",
            &[
                ("oid", Int),
                ("rolname", Text),
                ("rolsuper", Bool),
                ("rolinherit", Bool),
                ("rolcreaterole", Bool),
                ("rolcreatedb", Bool),
                ("rolcanlogin", Bool),
                ("rolreplication", Bool),
                ("rolconnlimit", Int),
                ("rolpassword", Text),
                ("rolbypassrls", Bool),
                ("rolconfig", TextList),
            ],
        ),
        (
            "pg_user",
            &[
                ("usename", Text),
                ("usesysid", Int),
                ("usecreatedb", Bool),
                ("usesuper", Bool),
                ("userepl", Bool),
                ("usebypassrls", Bool),
                ("passwd", Text),
            ],
        ),
        (
            "pg_settings",
            &[
                ("name", Text),
                ("setting", Text),
                ("unit", Text),
                ("category", Text),
                ("short_desc", Text),
                ("context", Text),
                ("vartype", Text),
                ("source", Text),
                ("boot_val", Text),
                ("reset_val", Text),
            ],
        ),
        (
            "pg_tables",
            &[
                ("schemaname", Text),
                ("tablename", Text),
                ("tableowner", Text),
                ("tablespace", Text),
                ("hasindexes", Bool),
                ("hasrules", Bool),
                ("hastriggers", Bool),
                ("rowsecurity", Bool),
            ],
        ),
        (
            "pg_views",
            &[
                ("schemaname", Text),
                ("viewname", Text),
                ("viewowner", Text),
                ("definition", Text),
            ],
        ),
        (
            "pg_matviews",
            &[
                ("schemaname", Text),
                ("matviewname", Text),
                ("matviewowner", Text),
                ("definition", Text),
            ],
        ),
        (
            "pg_index",
            &[
                ("indexrelid", Int),
                ("indrelid", Int),
                ("indnatts", Int),
                ("indisunique", Bool),
                ("indisprimary", Bool),
                ("indisclustered", Bool),
                ("indisvalid", Bool),
                ("indisreplident", Bool),
                ("indkey", Text),
                ("indpred", Text),
                ("indexprs", Text),
            ],
        ),
        (
            "pg_constraint",
            &[
                ("oid", Int),
                ("conname", Text),
                ("connamespace", Int),
                ("contype", Text),
                ("conrelid", Int),
                ("confrelid", Int),
                ("conindid", Int),
                ("conkey", Text),
                ("confkey", Text),
                ("conparentid", Int),
                ("convalidated", Bool),
            ],
        ),
        (
            "pg_attrdef",
            &[
                ("oid", Int),
                ("adrelid", Int),
                ("adnum", Int),
                ("adbin", Text),
            ],
        ),
        (
            "pg_inherits",
            &[
                ("inhrelid", Int),
                ("inhparent", Int),
                ("inhseqno", Int),
                ("inhdetachpending", Bool),
            ],
        ),
        (
            "pg_policy",
            &[
                ("oid", Int),
                ("polname", Text),
                ("polrelid", Int),
                ("polcmd", Text),
                ("polpermissive", Bool),
                ("polroles", Text),
                ("polqual", Text),
                ("polwithcheck", Text),
            ],
        ),
        (
            "pg_statistic_ext",
            &[
                ("oid", Int),
                ("stxrelid", Int),
                ("stxname", Text),
                ("stxnamespace", Int),
                ("stxkind", Text),
                ("stxstattarget", Int),
            ],
        ),
        (
            "pg_publication",
            &[
                ("oid", Int),
                ("pubname", Text),
                ("puballtables", Bool),
                ("pubinsert", Bool),
                ("pubupdate", Bool),
                ("pubdelete", Bool),
                ("pubtruncate", Bool),
                ("pubviaroot", Bool),
            ],
        ),
        (
            "pg_publication_rel",
            &[("oid", Int), ("prpubid", Int), ("prrelid", Int)],
        ),
        (
            "pg_publication_namespace",
            &[("oid", Int), ("pnpubid", Int), ("pnnspid", Int)],
        ),
        (
            "pg_collation",
            &[
                ("oid", Int),
                ("collname", Text),
                ("collnamespace", Int),
                ("collprovider", Text),
            ],
        ),
        (
            "pg_trigger",
            &[
                ("oid", Int),
                ("tgrelid", Int),
                ("tgname", Text),
                ("tgenabled", Text),
                ("tgisinternal", Bool),
                ("tgparentid", Int),
            ],
        ),
        (
            "pg_rewrite",
            &[
                ("oid", Int),
                ("rulename", Text),
                ("ev_class", Int),
                ("ev_type", Text),
            ],
        ),
        (
            "pg_depend",
            &[
                ("classid", Int),
                ("objid", Int),
                ("objsubid", Int),
                ("refclassid", Int),
                ("refobjid", Int),
                ("refobjsubid", Int),
                ("deptype", Text),
            ],
        ),
        (
            "pg_enum",
            &[
                ("oid", Int),
                ("enumtypid", Int),
                ("enumsortorder", Float),
                ("enumlabel", Text),
            ],
        ),
        (
            "pg_range",
            &[
                ("rngtypid", Int),
                ("rngsubtype", Int),
                ("rngmultitypid", Int),
            ],
        ),
        (
            "pg_extension",
            &[
                ("oid", Int),
                ("extname", Text),
                ("extowner", Int),
                ("extnamespace", Int),
                ("extversion", Text),
            ],
        ),
        (
            "pg_tablespace",
            &[("oid", Int), ("spcname", Text), ("spcowner", Int)],
        ),
        (
            "pg_foreign_table",
            &[("ftrelid", Int), ("ftserver", Int), ("ftoptions", Text)],
        ),
        (
            "pg_partitioned_table",
            &[("partrelid", Int), ("partstrat", Text), ("partnatts", Int)],
        ),
        (
            "pg_stat_user_tables",
            &[
                ("relid", Int),
                ("schemaname", Text),
                ("relname", Text),
                ("n_live_tup", Int),
            ],
        ),
    ]
};

/// The emulated tables that have rows; the others never do (SpendQL has no indexes,
/// constraints, triggers, ...).
const POPULATED: &[&str] = &[
    "pg_namespace",
    "pg_class",
    "pg_attribute",
    "pg_type",
    "pg_database",
    "pg_roles",
    "pg_user",
    "pg_am",
    "pg_proc",
    "pg_language",
    "pg_tables",
    "pg_views",
    "pg_description",
    "pg_settings",
];

/// Whether the emulated table `name` never has rows.
pub fn always_empty(name: &str) -> bool {
    is_table(name) && !POPULATED.contains(&name)
}

/// Whether `name` is one of the emulated tables.
pub fn is_table(name: &str) -> bool {
    TABLES.iter().any(|(n, _)| *n == name)
}

/// The `pg_catalog` schema of the `spendql` database.
#[derive(Debug)]
pub struct PgCatalog {
    /// The database it describes (weak: the database holds this schema).
    database: Weak<dyn CatalogProvider>,
}

impl PgCatalog {
    pub fn new(database: Weak<dyn CatalogProvider>) -> Self {
        PgCatalog { database }
    }

    /// The rows of one table, from the catalog as it is now.
    async fn rows(&self, name: &str) -> Result<Vec<Row>> {
        let relations = self.relations().await?;
        Ok(match name {
            "pg_namespace" => namespaces(),
            "pg_class" => relations.iter().map(Relation::class_row).collect(),
            "pg_attribute" => relations
                .iter()
                .flat_map(Relation::attribute_rows)
                .collect(),
            "pg_type" => types(),
            "pg_database" => vec![vec![
                ("oid", Cell::I(super::DATABASE_OID)),
                ("datname", t(crate::engine::DATABASE)),
                ("datdba", Cell::I(super::OWNER_OID)),
                ("encoding", Cell::I(6)),
                ("datlocprovider", t("c")),
                ("datallowconn", Cell::B(true)),
                ("datconnlimit", Cell::I(-1)),
                ("datcollate", t("C.UTF-8")),
                ("datctype", t("C.UTF-8")),
            ]],
            "pg_roles" => vec![vec![
                ("oid", Cell::I(super::OWNER_OID)),
                ("rolname", t(OWNER)),
                ("rolsuper", Cell::B(true)),
                ("rolinherit", Cell::B(true)),
                ("rolcanlogin", Cell::B(true)),
                ("rolconnlimit", Cell::I(-1)),
            ]],
            "pg_user" => vec![vec![
                ("usename", t(OWNER)),
                ("usesysid", Cell::I(super::OWNER_OID)),
                ("usesuper", Cell::B(true)),
            ]],
            "pg_proc" => super::procs::procs().iter().map(proc_row).collect(),
            "pg_language" => [(12, "internal"), (13, "c"), (14, "sql")]
                .into_iter()
                .map(|(oid, name)| {
                    vec![
                        ("oid", Cell::I(oid)),
                        ("lanname", t(name)),
                        ("lanowner", Cell::I(super::OWNER_OID)),
                        ("lanispl", Cell::B(false)),
                        ("lanpltrusted", Cell::B(false)),
                    ]
                })
                .collect(),
            "pg_am" => vec![vec![
                ("oid", Cell::I(2)),
                ("amname", t("heap")),
                ("amtype", t("t")),
            ]],
            // The defaults: a connection's own values are in SHOW and current_setting().
            "pg_settings" => crate::server::VARIABLES
                .iter()
                .map(|(name, value)| {
                    vec![
                        ("name", t(name.to_ascii_lowercase())),
                        ("setting", t(*value)),
                        ("context", t("user")),
                        ("vartype", t("string")),
                        ("source", t("default")),
                        ("boot_val", t(*value)),
                        ("reset_val", t(*value)),
                    ]
                })
                .collect(),
            "pg_description" => super::descriptions()
                .iter()
                .map(|(oid, text)| {
                    let class = if super::procs::by_oid(*oid).is_some() {
                        "pg_proc"
                    } else {
                        "pg_class"
                    };
                    vec![
                        ("objoid", Cell::I(*oid)),
                        ("classoid", Cell::I(relation_oid(super::PG_CATALOG, class))),
                        ("objsubid", Cell::I(0)),
                        ("description", t(text.as_str())),
                    ]
                })
                .collect(),
            "pg_tables" => relations
                .iter()
                .filter(|r| r.kind == "r")
                .map(|r| {
                    vec![
                        ("schemaname", t(&r.schema)),
                        ("tablename", t(&r.name)),
                        ("tableowner", t(OWNER)),
                    ]
                })
                .collect(),
            "pg_views" => relations
                .iter()
                .filter(|r| r.kind == "v")
                .map(|r| {
                    vec![
                        ("schemaname", t(&r.schema)),
                        ("viewname", t(&r.name)),
                        ("viewowner", t(OWNER)),
                    ]
                })
                .collect(),
            _ => Vec::new(),
        })
    }

    async fn relations(&self) -> Result<Vec<Relation>> {
        relations(&self.database).await
    }
}

/// Tables and views of every schema but the catalogs.
pub(super) async fn relations(database: &Weak<dyn CatalogProvider>) -> Result<Vec<Relation>> {
    let Some(database) = database.upgrade() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut schemas = database.schema_names();
    schemas.sort();
    for schema_name in schemas {
        if schema_name == super::PG_CATALOG || schema_name == super::INFORMATION_SCHEMA {
            continue;
        }
        let Some(schema) = database.schema(&schema_name) else {
            continue;
        };
        let mut names = schema.table_names();
        names.sort();
        for name in names {
            let Some(table) = schema.table(&name).await? else {
                continue;
            };
            let kind = match table.table_type() {
                TableType::View => "v",
                _ => "r",
            };
            out.push(Relation {
                oid: relation_oid(&schema_name, &name),
                namespace: namespace_oid(&schema_name),
                schema: schema_name.clone(),
                name,
                kind,
                columns: table
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone())
                    .collect(),
            });
        }
    }
    Ok(out)
}

/// A table or view as pg_class and pg_attribute show it.
pub(super) struct Relation {
    pub(super) oid: i64,
    pub(super) namespace: i64,
    pub(super) schema: String,
    pub(super) name: String,
    /// `r` (table) or `v` (view), as `pg_class.relkind`.
    pub(super) kind: &'static str,
    pub(super) columns: Vec<Field>,
}

impl Relation {
    fn class_row(&self) -> Row {
        vec![
            ("oid", Cell::I(self.oid)),
            ("relname", t(&self.name)),
            ("relnamespace", Cell::I(self.namespace)),
            ("relowner", Cell::I(super::OWNER_OID)),
            ("relam", Cell::I(if self.kind == "r" { 2 } else { 0 })),
            ("reltuples", Cell::I(-1)),
            ("relpersistence", t("p")),
            ("relkind", t(self.kind)),
            ("relnatts", Cell::I(self.columns.len() as i64)),
            ("relispopulated", Cell::B(true)),
            ("relreplident", t("d")),
        ]
    }

    fn attribute_rows(&self) -> Vec<Row> {
        self.columns
            .iter()
            .enumerate()
            .map(|(i, field)| {
                let ty = pg_type(field.data_type());
                let (_, len) = super::type_shape(&ty);
                vec![
                    ("attrelid", Cell::I(self.oid)),
                    ("attname", t(field.name())),
                    ("atttypid", Cell::I(i64::from(ty.oid()))),
                    ("attlen", Cell::I(len)),
                    ("attstorage", t(if len < 0 { "x" } else { "p" })),
                    ("attnum", Cell::I(i as i64 + 1)),
                    ("atttypmod", Cell::I(type_modifier(field.data_type()))),
                    ("attnotnull", Cell::B(!field.is_nullable())),
                    ("attidentity", t("")),
                    ("attgenerated", t("")),
                    ("attislocal", Cell::B(true)),
                    ("attstattarget", Cell::I(-1)),
                ]
            })
            .collect()
    }
}

/// PostgreSQL's typmod: for NUMERIC ((precision << 16) | scale) + 4, else -1.
fn type_modifier(dt: &DataType) -> i64 {
    match dt {
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
            ((i64::from(*p) << 16) | i64::from(*s as u8)) + 4
        }
        _ => -1,
    }
}

/// A SpendQL function as `pg_proc` shows it (language `internal`, stable, parallel safe).
fn proc_row(proc: &super::procs::Proc) -> Row {
    let required = proc.arguments.split('[').next().unwrap_or_default();
    let nargs = required.split(',').filter(|a| !a.trim().is_empty()).count();
    vec![
        ("oid", Cell::I(proc.oid)),
        ("proname", t(&proc.name)),
        ("pronamespace", Cell::I(PUBLIC_OID)),
        ("proowner", Cell::I(super::OWNER_OID)),
        ("prolang", Cell::I(12)),
        ("prokind", t(proc.kind)),
        ("prosecdef", Cell::B(false)),
        ("proleakproof", Cell::B(false)),
        ("proisstrict", Cell::B(false)),
        ("proretset", Cell::B(proc.returns_set)),
        ("provolatile", t("s")),
        ("proparallel", t("s")),
        ("pronargs", Cell::I(nargs as i64)),
        ("pronargdefaults", Cell::I(0)),
        ("prosrc", t(&proc.name)),
    ]
}

fn namespaces() -> Vec<Row> {
    [
        (PG_CATALOG_OID, super::PG_CATALOG),
        (PUBLIC_OID, crate::engine::SCHEMA),
        (INFORMATION_SCHEMA_OID, "information_schema"),
    ]
    .into_iter()
    .map(|(oid, name)| {
        vec![
            ("oid", Cell::I(oid)),
            ("nspname", t(name)),
            ("nspowner", Cell::I(super::OWNER_OID)),
        ]
    })
    .collect()
}

fn types() -> Vec<Row> {
    super::TYPES
        .iter()
        .map(|ty| {
            let (category, len) = super::type_shape(ty);
            vec![
                ("oid", Cell::I(i64::from(ty.oid()))),
                ("typname", t(ty.name())),
                ("typnamespace", Cell::I(PG_CATALOG_OID)),
                ("typowner", Cell::I(super::OWNER_OID)),
                ("typlen", Cell::I(len)),
                ("typbyval", Cell::B(len > 0 && len <= 8)),
                ("typtype", t("b")),
                ("typcategory", t(category)),
                ("typisdefined", Cell::B(true)),
                ("typdelim", t(",")),
                (
                    "typinput",
                    t(if category == "A" {
                        "array_in".to_owned()
                    } else {
                        format!("{}in", ty.name())
                    }),
                ),
                ("typalign", t("i")),
                ("typstorage", t("p")),
                ("typtypmod", Cell::I(-1)),
            ]
        })
        .collect()
}

/// One table's rows as an Arrow batch with its declared columns.
fn batch(columns: &[(&str, Ty)], rows: &[Row]) -> Result<RecordBatch> {
    fn find<'r>(row: &'r Row, name: &str) -> Option<&'r Cell> {
        row.iter().rev().find(|(n, _)| *n == name).map(|(_, c)| c)
    }
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    let mut fields = Vec::with_capacity(columns.len());
    for (name, ty) in columns {
        let (array, data_type): (ArrayRef, DataType) = match ty {
            Ty::Int => {
                let mut b = Int64Builder::with_capacity(rows.len());
                for row in rows {
                    b.append_value(match find(row, name) {
                        Some(Cell::I(i)) => *i,
                        _ => 0,
                    });
                }
                (Arc::new(b.finish()), DataType::Int64)
            }
            Ty::NullableInt => {
                let mut b = Int64Builder::with_capacity(rows.len());
                for row in rows {
                    match find(row, name) {
                        Some(Cell::I(i)) => b.append_value(*i),
                        _ => b.append_null(),
                    }
                }
                (Arc::new(b.finish()), DataType::Int64)
            }
            Ty::Float => {
                let mut b = Float64Builder::with_capacity(rows.len());
                for row in rows {
                    b.append_value(match find(row, name) {
                        Some(Cell::I(i)) => *i as f64,
                        _ => 0.0,
                    });
                }
                (Arc::new(b.finish()), DataType::Float64)
            }
            Ty::Bool => {
                let mut b = BooleanBuilder::with_capacity(rows.len());
                for row in rows {
                    b.append_value(matches!(find(row, name), Some(Cell::B(true))));
                }
                (Arc::new(b.finish()), DataType::Boolean)
            }
            Ty::TextList => {
                let item = Arc::new(Field::new_list_field(DataType::Utf8, true));
                let list = DataType::List(Arc::clone(&item));
                (arrow::array::new_null_array(&list, rows.len()), list)
            }
            Ty::Text => {
                let mut b = StringBuilder::new();
                for row in rows {
                    match find(row, name) {
                        Some(Cell::T(s)) => b.append_value(s),
                        _ => b.append_null(),
                    }
                }
                (Arc::new(b.finish()), DataType::Utf8)
            }
        };
        arrays.push(array);
        fields.push(Field::new(*name, data_type, true));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))
}

/// One emulated table's rows as a table to scan.
pub(super) fn mem_table(columns: &[(&str, Ty)], rows: &[Row]) -> Result<Arc<dyn TableProvider>> {
    let batch = batch(columns, rows)?;
    Ok(Arc::new(MemTable::try_new(
        batch.schema(),
        vec![vec![batch]],
    )?))
}

#[async_trait]
impl SchemaProvider for PgCatalog {
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
        is_table(name)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn table_names_are_unique_and_columns_too() {
        let mut names = BTreeMap::new();
        for (name, columns) in TABLES {
            assert!(names.insert(*name, ()).is_none(), "{name} twice");
            let mut seen = BTreeMap::new();
            for (column, _) in *columns {
                assert!(seen.insert(*column, ()).is_none(), "{name}.{column} twice");
            }
            batch(columns, &[]).expect("an empty batch builds");
        }
    }

    #[tokio::test]
    async fn the_always_empty_tables_are_empty_and_the_others_are_not() {
        let engine = crate::Engine::in_memory().await.expect("engine");
        let ctx = engine.session();
        for (name, _) in TABLES {
            let batches = ctx
                .sql(&format!("SELECT count(*) AS n FROM pg_catalog.{name}"))
                .await
                .expect("plans")
                .collect()
                .await
                .expect("runs");
            let n = batches[0]
                .column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .expect("count")
                .value(0);
            assert_eq!(n == 0, always_empty(name), "{name} has {n} rows");
        }
    }
}

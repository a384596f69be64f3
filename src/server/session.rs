//! One client connection: startup/authentication, the simple and extended
//! query protocols, and the PostgreSQL session statements (BEGIN, SET, SHOW…)
//! that are answered here instead of by DataFusion.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use async_trait::async_trait;
use bytes::{BufMut, BytesMut};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, UInt64Type};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::expr::{Cast, Placeholder, TryCast};
use datafusion::logical_expr::{Expr, LogicalPlan, Statement as PlanStatement, WriteOp};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParserBuilder, ResetStatement, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, ObjectName, ObjectNamePart, Set, Statement as SqlStatement, Value,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use futures::channel::oneshot;
use futures::{Sink, SinkExt, Stream, StreamExt};
use pgwire::api::auth::sasl::SCRAM_SHA_256_METHOD;
use pgwire::api::auth::sasl::scram::{
    ScramSecret, ScramServerAuth, ScramServerAuthWaitingForClientFinal,
};
use pgwire::api::auth::{
    ServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::copy::{CopyHandler, send_copy_in_response};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{
    ExtendedQueryHandler, SimpleQueryHandler, send_execution_response, send_query_response,
    send_ready_for_query,
};
use pgwire::api::results::{
    CopyResponse, DescribePortalResponse, DescribeStatementResponse, FieldFormat, FieldInfo,
    QueryResponse, Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionGuard, ConnectionHandle, METADATA_APPLICATION_NAME,
    METADATA_DATABASE, METADATA_USER, PgWireConnectionState, PidSecretKeyGenerator, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail, CopyOutResponse};
use pgwire::messages::data::DataRow;
use pgwire::messages::response::{EmptyQueryResponse, TransactionStatus};
use pgwire::messages::simplequery::Query;
use pgwire::messages::startup::{Authentication, ParameterStatus, PasswordMessageFamily};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use super::copy::{CopyIn, CopyOut};
use super::encode::{RowEncoder, field_info, field_infos};
use super::params::{decode_params, described_type};
use super::sqlstate::{
    FEATURE_NOT_SUPPORTED, IN_FAILED_SQL_TRANSACTION, INSUFFICIENT_PRIVILEGE,
    INVALID_AUTHORIZATION_SPECIFICATION, INVALID_CATALOG_NAME, INVALID_PARAMETER_VALUE,
    INVALID_PASSWORD, PROGRAM_LIMIT_EXCEEDED, PROTOCOL_VIOLATION, QUERY_CANCELED, SYNTAX_ERROR,
    StatementTimeout, TOO_MANY_CONNECTIONS, UNDEFINED_OBJECT,
};
use super::{Shared, df_error, fatal_error, pg_error};
use crate::auth::Role;
use crate::auth::privileges::{self, PrivilegeError};
use crate::auth::users::Users;
use crate::pgcompat;

/// The only database name clients may connect to.
pub const DATABASE: &str = "spendql";
/// What `server_version` reports: PostgreSQL 16 wire and SQL conventions.
pub const SERVER_VERSION: &str = "16.6";
/// `server_version_num`, which Grafana reads to pick its SQL.
const SERVER_VERSION_NUM: &str = "160006";

/// Highest `$n` accepted (PostgreSQL's limit; Bind counts are 16-bit).
const MAX_PARAMETERS: usize = 65_535;

/// PostgreSQL session variables answered locally, with their defaults and
/// canonical spelling. SET of one of these never reaches DataFusion.
pub(crate) const VARIABLES: &[(&str, &str)] = &[
    ("server_version", SERVER_VERSION),
    ("server_version_num", SERVER_VERSION_NUM),
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("DateStyle", "ISO, MDY"),
    ("TimeZone", "UTC"),
    ("IntervalStyle", "postgres"),
    ("integer_datetimes", "on"),
    ("standard_conforming_strings", "on"),
    ("application_name", ""),
    ("extra_float_digits", "1"),
    ("search_path", "\"$user\", public"),
    ("statement_timeout", "0"),
    ("lock_timeout", "0"),
    ("idle_in_transaction_session_timeout", "0"),
    ("client_min_messages", "notice"),
    ("transaction_isolation", "read committed"),
    ("default_transaction_isolation", "read committed"),
    ("max_identifier_length", "63"),
    ("max_index_keys", "32"),
    ("is_superuser", "off"),
];

/// Variables clients may change with SET (the rest are read-only).
const SETTABLE: &[&str] = &[
    "application_name",
    "extra_float_digits",
    "datestyle",
    "client_encoding",
    "search_path",
    "timezone",
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "client_min_messages",
    "intervalstyle",
];

/// Variables whose changes PostgreSQL reports with ParameterStatus.
const REPORTED: &[&str] = &[
    "application_name",
    "client_encoding",
    "datestyle",
    "timezone",
    "intervalstyle",
];

/// Per-connection values of [`VARIABLES`], keyed by lower-case name.
#[derive(Debug, Clone)]
struct Vars(BTreeMap<String, (&'static str, String)>);

impl Default for Vars {
    fn default() -> Self {
        Self(
            VARIABLES
                .iter()
                .map(|(name, value)| (name.to_ascii_lowercase(), (*name, (*value).to_owned())))
                .collect(),
        )
    }
}

impl Vars {
    fn get(&self, name: &str) -> Option<(&'static str, &str)> {
        self.0.get(name).map(|(n, v)| (*n, v.as_str()))
    }

    fn set(&mut self, name: &str, value: String) {
        if let Some(slot) = self.0.get_mut(name) {
            slot.1 = value;
        }
    }

    fn reset(&mut self, name: &str) {
        let default = VARIABLES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| (*v).to_owned());
        if let Some(v) = default {
            self.set(name, v);
        }
    }
}

/// The parameters sent as ParameterStatus after authentication.
struct StartupParameters(HashMap<String, String>);

impl ServerParameterProvider for StartupParameters {
    fn server_parameters<C: ClientInfo>(&self, _client: &C) -> Option<HashMap<String, String>> {
        Some(self.0.clone())
    }
}

/// A statement after parsing: either answered by the session itself or a
/// DataFusion statement (planned at Parse time in the extended protocol, so
/// Describe can report parameter and result types).
#[derive(Debug, Clone)]
pub struct Prepared {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Begin,
    Commit,
    Rollback,
    /// Savepoint commands and `ROLLBACK TO`: accepted, nothing to do.
    Noop(&'static str),
    Set {
        name: String,
        value: Option<String>,
    },
    Show {
        name: String,
    },
    DiscardAll,
    /// `COPY ... FROM STDIN` / `TO STDOUT` prepared with the extended protocol.
    Copy {
        sql: String,
    },
    Sql {
        statement: Box<DFStatement>,
        described: Option<Arc<Described>>,
    },
}

/// Types learned from planning at Parse time.
#[derive(Debug)]
struct Described {
    /// Inferred type of `$1..$n` (index 0 is `$1`).
    params: Vec<Option<DataType>>,
    /// Result columns; empty for DML/DDL (Describe answers NoData).
    columns: Vec<(String, DataType)>,
}

impl Described {
    /// The Arrow types the client was told about; untyped (`NULL`) columns
    /// were described as text.
    fn expected_types(&self) -> Arc<[DataType]> {
        self.columns
            .iter()
            .map(|(_, dt)| match dt {
                DataType::Null => DataType::Utf8,
                other => other.clone(),
            })
            .collect()
    }
}

/// One connection's state, shared by its startup, simple and extended handlers.
pub struct Session {
    shared: Arc<Shared>,
    ctx: SessionContext,
    parser: Arc<Parser>,
    /// Shared with the session's `current_setting()`.
    vars: Arc<Mutex<Vars>>,
    /// The `COPY ... FROM STDIN` receiving data, if one is.
    copy_in: Mutex<Option<CopyIn>>,
    /// Set once authentication succeeds; queries run with its privileges.
    role: OnceLock<Role>,
    /// The SCRAM exchange in progress during startup.
    scram: Mutex<Option<Scram>>,
    /// Bumped by each cancel request for this connection (set once it has a backend id).
    cancel_signal: OnceLock<(i32, tokio::sync::watch::Receiver<u64>)>,
    /// Writes committed since `BEGIN`: each statement commits on its own, so a `ROLLBACK`
    /// that follows them warns that it undoes nothing.
    block_writes: Mutex<Option<u64>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some((pid, _)) = self.cancel_signal.get() {
            self.shared.cancel_signals.unregister(*pid);
        }
    }
}

/// Where a SCRAM-SHA-256 exchange stands.
enum ScramStage {
    /// AuthenticationSASL sent; the client-first message comes next.
    AwaitingFirst(ScramSecret),
    /// server-first sent; the client's proof comes next.
    AwaitingFinal(ScramServerAuthWaitingForClientFinal),
}

struct Scram {
    stage: ScramStage,
    user: String,
    /// `None` for an unknown user: the exchange runs to the end, then fails.
    role: Option<Role>,
}

impl Session {
    pub fn new(shared: Arc<Shared>) -> Self {
        let ctx = shared.engine.session();
        let parser = Arc::new(Parser {
            ctx: ctx.clone(),
            max_query_bytes: shared.options.max_query_bytes,
        });
        Self {
            shared,
            ctx,
            parser,
            vars: Arc::new(Mutex::new(Vars::default())),
            copy_in: Mutex::new(None),
            block_writes: Mutex::new(None),
            role: OnceLock::new(),
            scram: Mutex::new(None),
            cancel_signal: OnceLock::new(),
        }
    }

    /// The authenticated role. Queries only arrive after authentication, so a missing
    /// role is a bug; it refuses rather than grants.
    fn role(&self) -> PgWireResult<&Role> {
        self.role.get().ok_or_else(|| {
            pg_error(
                INVALID_AUTHORIZATION_SPECIFICATION,
                "the connection is not authenticated",
            )
        })
    }

    /// Role checks (and a team reader's row filter) on a plan about to run.
    fn authorize(&self, plan: LogicalPlan) -> PgWireResult<LogicalPlan> {
        privileges::authorize(plan, self.role()?, &self.ctx.state()).map_err(privilege_error)
    }

    /// Plan `sql` and check it; COPY TO STDOUT runs its query through this.
    async fn plan_authorized(&self, sql: &str) -> PgWireResult<LogicalPlan> {
        let plan = self
            .ctx
            .state()
            .create_logical_plan(sql)
            .await
            .map_err(df_error)?;
        self.authorize(plan)
    }

    fn block_writes(&self) -> MutexGuard<'_, Option<u64>> {
        self.block_writes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A write committed; counted if a `BEGIN` block is open.
    fn wrote(&self) {
        if let Some(count) = self.block_writes().as_mut() {
            *count += 1;
        }
    }

    fn copy_in(&self) -> MutexGuard<'_, Option<CopyIn>> {
        self.copy_in.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Poisoning only means another handler panicked mid-update of a map of
    /// strings; the map is still usable.
    fn vars(&self) -> MutexGuard<'_, Vars> {
        self.vars.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs every statement of a simple Query message in order, sending each
    /// result before the next statement starts (so `INSERT …; SELECT …` sees
    /// the insert). The first error aborts the rest, as in PostgreSQL.
    /// `COPY (query) TO STDOUT`: CopyOutResponse, one CopyData per row as the batches
    /// stream, CopyDone; returns the rows sent, for the `COPY n` that follows.
    async fn copy_out<C>(&self, client: &mut C, copy: CopyOut) -> PgWireResult<usize>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let plan = self.plan_authorized(copy.query()).await?;
        let frame = self
            .ctx
            .execute_logical_plan(plan)
            .await
            .map_err(df_error)?;
        let mut stream = frame.execute_stream().await.map_err(df_error)?;
        let schema = stream.schema();
        let columns = i16::try_from(schema.fields().len()).unwrap_or(i16::MAX);
        client
            .send(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
                0,
                columns,
                vec![0; usize::try_from(columns).unwrap_or(0)],
            )))
            .await?;
        if let Some(header) = copy.header(&schema) {
            client
                .feed(PgWireBackendMessage::CopyData(CopyData::new(header.into())))
                .await?;
        }
        let mut rows = 0usize;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(df_error)?;
            for line in copy.rows(&batch)? {
                client
                    .feed(PgWireBackendMessage::CopyData(CopyData::new(line.into())))
                    .await?;
                rows += 1;
            }
        }
        client
            .feed(PgWireBackendMessage::CopyDone(CopyDone::new()))
            .await?;
        Ok(rows)
    }

    /// `COPY ... FROM STDIN` or `COPY ... TO STDOUT` sent with the extended protocol
    /// (tokio-postgres `copy_in` / `copy_out`). COPY FROM answers CopyInResponse here; the
    /// data then reaches the [`CopyHandler`] as with the simple protocol.
    async fn execute_copy<C>(&self, client: &mut C, sql: &str) -> PgWireResult<Response>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(copy) = CopyIn::parse(sql) {
            let copy = self.start_copy_in(copy?)?;
            return Ok(Response::CopyIn(CopyResponse::new(
                0,
                copy,
                futures::stream::empty(),
            )));
        }
        match CopyOut::parse(sql) {
            Some(copy) => {
                let rows = self.copy_out(client, copy?).await?;
                Ok(Response::Execution(Tag::new("COPY").with_rows(rows)))
            }
            None => Err(pg_error(SYNTAX_ERROR, "not a COPY statement")),
        }
    }

    /// Check the role may load the table, then wait for the data; returns the column count
    /// for the CopyInResponse.
    fn start_copy_in(&self, copy: CopyIn) -> PgWireResult<usize> {
        privileges::check_copy_into(copy.table(), self.role()?).map_err(privilege_error)?;
        let columns = copy.column_count();
        *self.copy_in() = Some(copy);
        Ok(columns)
    }

    async fn run_simple<C>(
        &self,
        client: &mut C,
        sql: &str,
        status: &mut TransactionStatus,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        check_length(sql, self.shared.options.max_query_bytes)?;
        let statements = parse_sql(sql)?;
        if statements.is_empty() {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await?;
            return Ok(());
        }
        for statement in statements {
            let prepared = Prepared {
                kind: classify(statement),
            };
            let response = match aborted_transaction(*status, &prepared.kind)? {
                Some(response) => response,
                None => {
                    self.execute(client, &prepared, None, &Format::UnifiedText)
                        .await?
                }
            };
            match response {
                Response::Query(rows) => send_query_response(client, rows, true).await?,
                Response::Execution(tag) => send_execution_response(client, tag).await?,
                Response::TransactionStart(tag) => {
                    send_execution_response(client, tag).await?;
                    *status = status.to_in_transaction_state();
                }
                Response::TransactionEnd(tag) => {
                    send_execution_response(client, tag).await?;
                    *status = status.to_idle_state();
                }
                Response::EmptyQuery => {
                    client
                        .feed(PgWireBackendMessage::EmptyQueryResponse(
                            EmptyQueryResponse::new(),
                        ))
                        .await?
                }
                Response::Error(info) => return Err(PgWireError::UserError(info)),
                Response::CopyIn(_) | Response::CopyOut(_) | Response::CopyBoth(_) => {
                    return Err(pg_error(FEATURE_NOT_SUPPORTED, "COPY is not supported"));
                }
            }
        }
        Ok(())
    }

    /// Executes one prepared statement. `params` are bound values (extended
    /// protocol only); `format` the client's requested result formats.
    async fn execute<C>(
        &self,
        client: &mut C,
        prepared: &Prepared,
        params: Option<Vec<ScalarValue>>,
        format: &Format,
    ) -> PgWireResult<Response>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match &prepared.kind {
            Kind::Begin => {
                *self.block_writes() = Some(0);
                Ok(Response::TransactionStart(Tag::new("BEGIN")))
            }
            Kind::Commit => {
                *self.block_writes() = None;
                Ok(Response::TransactionEnd(Tag::new("COMMIT")))
            }
            Kind::Rollback => {
                let writes = self.block_writes().take().unwrap_or(0);
                if writes > 0 {
                    let warning = ErrorInfo::new(
                        "WARNING".to_owned(),
                        "01000".to_owned(),
                        format!(
                            "ROLLBACK undid nothing: SpendQL commits each statement on its own, \
                             and the {writes} write(s) since BEGIN are stored"
                        ),
                    );
                    client
                        .feed(PgWireBackendMessage::NoticeResponse(warning.into()))
                        .await?;
                }
                Ok(Response::TransactionEnd(Tag::new("ROLLBACK")))
            }
            Kind::Noop(tag) => Ok(Response::Execution(Tag::new(tag))),
            Kind::DiscardAll => {
                *self.vars() = Vars::default();
                Ok(Response::Execution(Tag::new("DISCARD ALL")))
            }
            Kind::Set { name, value } => {
                let reported = self.set_variable(name, value.clone())?;
                if let Some((name, value)) = reported {
                    client
                        .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                            name, value,
                        )))
                        .await?;
                }
                Ok(Response::Execution(Tag::new(if value.is_some() {
                    "SET"
                } else {
                    "RESET"
                })))
            }
            Kind::Show { name } => self.show(name, format),
            Kind::Copy { sql } => self.execute_copy(client, sql).await,
            Kind::Sql {
                statement,
                described,
            } => {
                self.execute_sql(statement, described.as_deref(), params, format)
                    .await
            }
        }
    }

    /// Applies `SET name = value` (`None` = RESET); returns the
    /// ParameterStatus to send when the variable is one clients track.
    fn set_variable(
        &self,
        name: &str,
        value: Option<String>,
    ) -> PgWireResult<Option<(String, String)>> {
        let mut vars = self.vars();
        match value.filter(|v| !v.eq_ignore_ascii_case("default")) {
            None => vars.reset(name),
            Some(v) => {
                if name == "client_encoding" && !is_utf8_name(&v) {
                    return Err(pg_error(
                        FEATURE_NOT_SUPPORTED,
                        format!("client_encoding \"{v}\" is not supported: only UTF8 is"),
                    ));
                }
                vars.set(name, v)
            }
        }
        Ok(REPORTED
            .contains(&name)
            .then(|| vars.get(name))
            .flatten()
            .map(|(n, v)| (n.to_owned(), v.to_owned())))
    }

    fn show(&self, name: &str, format: &Format) -> PgWireResult<Response> {
        let vars = self.vars();
        let (display, value) = vars.get(name).ok_or_else(|| {
            pg_error(
                UNDEFINED_OBJECT,
                format!("unrecognized configuration parameter \"{name}\""),
            )
        })?;
        let fields = Arc::new(vec![field_info(
            display,
            &DataType::Utf8,
            format.format_for(0),
        )]);
        let mut buf = BytesMut::with_capacity(4 + value.len());
        buf.put_i32(i32::try_from(value.len()).unwrap_or(i32::MAX));
        buf.put_slice(value.as_bytes());
        let row = DataRow::new(buf, 1);
        Ok(Response::Query(QueryResponse::new(
            fields,
            futures::stream::iter(vec![Ok(row)]),
        )))
    }

    /// Plans (again, so catalog changes since Parse are seen), binds
    /// parameters, executes, and streams rows or reports the command tag.
    async fn execute_sql(
        &self,
        statement: &DFStatement,
        described: Option<&Described>,
        params: Option<Vec<ScalarValue>>,
        format: &Format,
    ) -> PgWireResult<Response> {
        let deadline = self.statement_deadline();
        let running = self.run_sql(statement, described, params, format, deadline);
        match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, running)
                .await
                .unwrap_or_else(|_| Err(timeout_error())),
            None => running.await,
        }
    }

    /// The connection's cancel signal as of now: later cancel requests wake it.
    fn cancel_watch(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        let (_, signal) = self.cancel_signal.get()?;
        let mut signal = signal.clone();
        signal.mark_unchanged();
        Some(signal)
    }

    /// When a statement starting now must end, from `statement_timeout`.
    fn statement_deadline(&self) -> Option<tokio::time::Instant> {
        let timeout = self
            .vars()
            .get("statement_timeout")
            .and_then(|(_, value)| parse_timeout(value))?;
        Some(tokio::time::Instant::now() + timeout)
    }

    async fn run_sql(
        &self,
        statement: &DFStatement,
        described: Option<&Described>,
        params: Option<Vec<ScalarValue>>,
        format: &Format,
        deadline: Option<tokio::time::Instant>,
    ) -> PgWireResult<Response> {
        let state = self.ctx.state();
        let bound = match &params {
            Some(values) => super::table_args::bind_table_args(statement, values).map_err(|n| {
                pg_error(
                    INVALID_PARAMETER_VALUE,
                    format!(
                        "parameter ${n} of a table function needs a text, number or boolean value"
                    ),
                )
            })?,
            None => None,
        };
        let mut plan = state
            .statement_to_plan(bound.unwrap_or_else(|| statement.clone()))
            .await
            .map_err(df_error)?;
        if let Some(values) = params.filter(|v| !v.is_empty()) {
            plan = plan
                .replace_params_with_values(&ParamValues::from(values))
                .map_err(df_error)?;
        }
        let plan = self.authorize(plan)?;
        let outcome = outcome(&plan, statement);
        let frame = self
            .ctx
            .execute_logical_plan(plan)
            .await
            .map_err(df_error)?;
        match outcome {
            Outcome::Rows => {
                let stream = frame.execute_stream().await.map_err(df_error)?;
                let schema = stream.schema();
                let expected = described
                    .filter(|d| !d.columns.is_empty())
                    .map(Described::expected_types);
                let fields: Vec<FieldInfo> = match &expected {
                    Some(types) => field_infos(
                        described
                            .iter()
                            .flat_map(|d| d.columns.iter().map(|(n, _)| n.as_str()))
                            .zip(types.iter()),
                        format,
                    ),
                    None => field_infos(
                        schema
                            .fields()
                            .iter()
                            .map(|f| (f.name().as_str(), f.data_type())),
                        format,
                    ),
                };
                let formats: Arc<[FieldFormat]> = fields.iter().map(FieldInfo::format).collect();
                let encoder = RowEncoder::new(formats, expected);
                Ok(Response::Query(QueryResponse::new(
                    Arc::new(fields),
                    row_stream(stream, encoder, deadline, self.cancel_watch()),
                )))
            }
            Outcome::Count(command) => {
                let batches = frame.collect().await.map_err(df_error)?;
                self.wrote();
                let rows = affected_rows(&batches);
                let tag = if command == "INSERT" {
                    Tag::new(command).with_oid(0).with_rows(rows)
                } else {
                    Tag::new(command).with_rows(rows)
                };
                Ok(Response::Execution(tag))
            }
            Outcome::Command(tag) => {
                frame.collect().await.map_err(df_error)?;
                Ok(Response::Execution(Tag::new(&tag)))
            }
        }
    }

    fn startup_parameters(
        &self,
        application_name: Option<&str>,
        user: &str,
        role: &Role,
    ) -> StartupParameters {
        let mut vars = self.vars();
        if let Some(app) = application_name {
            vars.set("application_name", app.to_owned());
        }
        let superuser = if *role == Role::Admin { "on" } else { "off" };
        vars.set("is_superuser", superuser.to_owned());
        let mut params: HashMap<String, String> = [
            "server_version",
            "server_encoding",
            "client_encoding",
            "datestyle",
            "timezone",
            "intervalstyle",
            "integer_datetimes",
            "standard_conforming_strings",
            "application_name",
            "is_superuser",
        ]
        .iter()
        .filter_map(|k| vars.get(k))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
        params.insert("session_authorization".into(), user.to_owned());

        params.insert("in_hot_standby".into(), "off".into());
        params.insert("default_transaction_read_only".into(), "off".into());
        StartupParameters(params)
    }
}

/// `datestyle` → `DateStyle`: SHOW's column is named like PostgreSQL's.
fn display_name(key: &str) -> &str {
    VARIABLES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(key))
        .map_or(key, |(n, _)| n)
}

fn is_utf8_name(v: &str) -> bool {
    matches!(
        v.to_ascii_uppercase().replace(['-', '_'], "").as_str(),
        "UTF8" | "UNICODE"
    )
}

/// Loopback only: with no users configured, the OS user boundary of the host
/// is the only protection.
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

#[async_trait]
impl StartupHandler for Session {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(startup) => {
                protocol_negotiation(client, &startup).await?;
                save_startup_parameters_to_metadata(client, &startup);
                self.begin_authentication(client).await
            }
            PgWireFrontendMessage::PasswordMessageFamily(message) => {
                self.continue_scram(client, message).await
            }
            _ => Ok(()),
        }
    }
}

impl Session {
    /// Check the startup packet; then either finish (no users: loopback clients are
    /// trusted as admin) or start a SCRAM-SHA-256 exchange.
    async fn begin_authentication<C>(&self, client: &mut C) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if self.shared.options.require_tls && !client.is_secure() {
            return Err(fatal_error(
                INVALID_AUTHORIZATION_SPECIFICATION,
                "this server requires SSL: connect with sslmode=require",
            ));
        }
        let user = client
            .metadata()
            .get(METADATA_USER)
            .cloned()
            .ok_or_else(|| {
                fatal_error(
                    INVALID_AUTHORIZATION_SPECIFICATION,
                    "no PostgreSQL user name specified in startup packet",
                )
            })?;
        // Like PostgreSQL, the database defaults to the user name.
        let database = client
            .metadata()
            .get(METADATA_DATABASE)
            .cloned()
            .unwrap_or_else(|| user.clone());
        if database != DATABASE {
            return Err(fatal_error(
                INVALID_CATALOG_NAME,
                format!("database \"{database}\" does not exist"),
            ));
        }
        let users = self.users()?;
        if users.is_empty() {
            if !is_loopback(client.socket_addr().ip()) {
                return Err(fatal_error(
                    INVALID_AUTHORIZATION_SPECIFICATION,
                    "no users are configured: only loopback connections are accepted",
                ));
            }
            return self.complete_startup(client, &user, Role::Admin).await;
        }
        let (secret, role) = users.scram_secret(&user);
        *self.scram_state() = Some(Scram {
            stage: ScramStage::AwaitingFirst(secret),
            user,
            role,
        });
        client.set_state(PgWireConnectionState::AuthenticationInProgress);
        client
            .send(PgWireBackendMessage::Authentication(Authentication::SASL(
                vec![SCRAM_SHA_256_METHOD.to_owned()],
            )))
            .await?;
        Ok(())
    }

    /// The next SCRAM message: client-first (answer server-first) or client-final
    /// (verify the proof, then finish or refuse with 28P01).
    async fn continue_scram<C>(
        &self,
        client: &mut C,
        message: PasswordMessageFamily,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(Scram { stage, user, role }) = self.scram_state().take() else {
            return Err(fatal_error(
                PROTOCOL_VIOLATION,
                "unexpected password message",
            ));
        };
        let failed = || {
            fatal_error(
                INVALID_PASSWORD,
                format!("password authentication failed for user \"{user}\""),
            )
        };
        match stage {
            ScramStage::AwaitingFirst(secret) => {
                let initial = message.into_sasl_initial_response()?;
                if initial.auth_method != SCRAM_SHA_256_METHOD {
                    return Err(fatal_error(
                        INVALID_AUTHORIZATION_SPECIFICATION,
                        format!(
                            "SASL mechanism {} is not supported: use {SCRAM_SHA_256_METHOD}",
                            initial.auth_method
                        ),
                    ));
                }
                let data = initial.data.unwrap_or_default();
                let (server_first, waiting) = ScramServerAuth::new()
                    .on_client_first_message_with_secret(&data, secret)
                    .map_err(|e| fatal_error(PROTOCOL_VIOLATION, e.to_string()))?;
                *self.scram_state() = Some(Scram {
                    stage: ScramStage::AwaitingFinal(waiting),
                    user,
                    role,
                });
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::SASLContinue(server_first.into_bytes().into()),
                    ))
                    .await?;
                Ok(())
            }
            ScramStage::AwaitingFinal(waiting) => {
                let response = message.into_sasl_response()?;
                let server_final = match waiting.on_client_final_message(&response.data) {
                    Ok(server_final) => server_final,
                    Err(PgWireError::InvalidPassword(_)) => return Err(failed()),
                    Err(e) => return Err(fatal_error(PROTOCOL_VIOLATION, e.to_string())),
                };
                let Some(role) = role else {
                    return Err(failed());
                };
                client
                    .feed(PgWireBackendMessage::Authentication(
                        Authentication::SASLFinal(server_final.into_bytes().into()),
                    ))
                    .await?;
                tracing::debug!(%user, %role, "authenticated");
                self.complete_startup(client, &user, role).await
            }
        }
    }

    /// The user store, read at each connection so `spendql user add` takes effect at
    /// once. An unreadable store refuses the connection (fail closed).
    fn users(&self) -> PgWireResult<Users> {
        let Some(dir) = self.shared.engine.data_dir() else {
            return Ok(Users::default());
        };
        Users::load(dir).map_err(|e| {
            tracing::error!(error = %e, "cannot read the user store");
            fatal_error(
                INVALID_AUTHORIZATION_SPECIFICATION,
                "the server cannot read its user store; see the server log",
            )
        })
    }

    fn scram_state(&self) -> MutexGuard<'_, Option<Scram>> {
        self.scram.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// AuthenticationOk, parameters, BackendKeyData, ReadyForQuery.
    async fn complete_startup<C>(&self, client: &mut C, user: &str, role: Role) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let app = client.metadata().get(METADATA_APPLICATION_NAME).cloned();
        let parameters = self.startup_parameters(app.as_deref(), user, &role);
        let _ = self.role.set(role);

        let (pid, secret) = self.shared.pids.generate(&*client);
        let vars = Arc::clone(&self.vars);
        let setting = move |name: &str| {
            let vars = vars.lock().unwrap_or_else(|p| p.into_inner());
            vars.get(name).map(|(_, value)| value.to_owned())
        };
        pgcompat::functions::register_session(&self.ctx, user, pid, Arc::new(setting));
        client.set_pid_and_secret_key(pid, secret.clone());
        let signal = self.shared.cancel_signals.register(pid);
        let _ = self.cancel_signal.set((pid, signal));
        let (handle, guard) = self.shared.cancels.register(pid, secret);
        client
            .session_extensions()
            .insert::<Arc<ConnectionHandle>>(handle);
        client.session_extensions().insert::<ConnectionGuard>(guard);

        finish_authentication(client, &parameters).await
    }
}

/// A refused privilege is 42501; a failure to build the team filter is the planner's error.
fn privilege_error(e: PrivilegeError) -> PgWireError {
    match e {
        PrivilegeError::Denied(_) => pg_error(INSUFFICIENT_PRIVILEGE, e.to_string()),
        PrivilegeError::Plan(e) => df_error(e),
    }
}

/// Fresh cancel receiver for this connection's next query, if registered.
async fn cancel_receiver<C: ClientInfo>(client: &C) -> Option<oneshot::Receiver<()>> {
    let handle = client.session_extensions().get::<Arc<ConnectionHandle>>()?;
    Some(handle.start_query().await)
}

/// Resolves only when a CancelRequest fired; a replaced or dropped sender
/// means "no cancel", so it then never resolves.
async fn cancelled(rx: Option<oneshot::Receiver<()>>) {
    if let Some(rx) = rx
        && rx.await.is_ok()
    {
        return;
    }
    futures::future::pending::<()>().await
}

#[async_trait]
impl SimpleQueryHandler for Session {
    /// Overrides pgwire's default so statements run and reply one at a time
    /// (see [`Session::run_simple`]).
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        if let Some(copy) = CopyIn::parse(&query.query) {
            // The data follows in CopyData messages; pgwire routes them to the CopyHandler
            // below, which answers `COPY n` and ReadyForQuery.
            let columns = self.start_copy_in(copy?)?;
            send_copy_in_response(
                client,
                CopyResponse::new(0, columns, futures::stream::empty()),
            )
            .await?;
            client.set_state(PgWireConnectionState::CopyInProgress(false));
            return Ok(());
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        let mut status = client.transaction_status();
        let cancel = cancel_receiver(client).await;
        let result = tokio::select! {
            r = async {
                match CopyOut::parse(&query.query) {
                    Some(copy) => {
                        let rows = self.copy_out(client, copy?).await?;
                        send_execution_response(client, Tag::new("COPY").with_rows(rows)).await
                    }
                    None => self.run_simple(client, &query.query, &mut status).await,
                }
            } => r,
            () = cancelled(cancel) => Err(PgWireError::QueryCanceled),
        };
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client.set_transaction_status(status);
        result?;
        send_ready_for_query(client, status).await
    }

    /// Not used by [`Self::on_query`]; kept for callers of the trait method:
    /// runs all statements and collects their responses.
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        check_length(query, self.shared.options.max_query_bytes)?;
        let statements = parse_sql(query)?;
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let mut responses = Vec::with_capacity(statements.len());
        for statement in statements {
            let prepared = Prepared {
                kind: classify(statement),
            };
            match self
                .execute(client, &prepared, None, &Format::UnifiedText)
                .await
            {
                Ok(r) => responses.push(r),
                Err(PgWireError::UserError(info)) => {
                    responses.push(Response::Error(info));
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(responses)
    }
}

#[async_trait]
impl CopyHandler for Session {
    async fn on_copy_data<C>(&self, _client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut guard = self.copy_in();
        let Some(copy) = guard.as_mut() else {
            return Err(pg_error(PROTOCOL_VIOLATION, "CopyData outside COPY"));
        };
        if let Err(e) = copy.add(&copy_data.data) {
            // Drop what was collected; the rest of the data is ignored until CopyDone.
            *guard = None;
            return Err(e);
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let copy = self.copy_in().take().ok_or_else(|| {
            pg_error(
                PROGRAM_LIMIT_EXCEEDED,
                "the COPY was abandoned after an error",
            )
        })?;
        let rows = copy.finish(&self.shared.engine).await?;
        self.wrote();
        send_execution_response(client, Tag::new("COPY").with_rows(rows as usize)).await
    }

    async fn on_copy_fail<C>(&self, _client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        *self.copy_in() = None;
        pg_error(
            QUERY_CANCELED,
            format!("COPY from stdin failed: {}", fail.message),
        )
    }
}

/// Parses (and for DataFusion statements, plans) Parse messages.
pub struct Parser {
    ctx: SessionContext,
    max_query_bytes: usize,
}

impl Parser {
    /// One SQL statement: session statements are answered locally, the rest is planned now
    /// so Describe can report parameter and result types.
    async fn parse_statement(&self, sql: &str) -> PgWireResult<Option<Prepared>> {
        let mut statements = parse_sql(sql)?;
        if statements.len() > 1 {
            return Err(pg_error(
                SYNTAX_ERROR,
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        let Some(statement) = statements.pop() else {
            return Ok(None);
        };
        let kind = match classify(statement) {
            Kind::Sql { statement, .. } => {
                let plan = self
                    .ctx
                    .state()
                    .statement_to_plan((*statement).clone())
                    .await
                    .map_err(df_error)?;
                let described = describe(&plan, &statement)?;
                Kind::Sql {
                    statement,
                    described: Some(Arc::new(described)),
                }
            }
            other => other,
        };
        Ok(Some(Prepared { kind }))
    }
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        check_length(sql, self.max_query_bytes)?;
        // DataFusion's parser knows neither COPY FROM STDIN nor TO STDOUT.
        let copy_error = match (CopyIn::parse(sql), CopyOut::parse(sql)) {
            (Some(Err(e)), _) | (_, Some(Err(e))) => Some(e),
            (Some(Ok(_)), _) | (_, Some(Ok(_))) => None,
            (None, None) => return self.parse_statement(sql).await,
        };
        match copy_error {
            Some(e) => Err(e),
            None => Ok(Some(Prepared {
                kind: Kind::Copy {
                    sql: sql.to_owned(),
                },
            })),
        }
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(match &stmt.kind {
            Kind::Sql {
                described: Some(d), ..
            } => d
                .params
                .iter()
                .map(|t| described_type(None, t.as_ref()))
                .collect(),
            _ => Vec::new(),
        })
    }

    fn get_result_schema(
        &self,
        stmt: &Prepared,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        Ok(result_fields(
            stmt,
            column_format.unwrap_or(&Format::UnifiedText),
        ))
    }
}

/// RowDescription of a prepared statement (empty = NoData).
fn result_fields(stmt: &Prepared, format: &Format) -> Vec<FieldInfo> {
    match &stmt.kind {
        Kind::Sql {
            described: Some(d), ..
        } => {
            let types = d.expected_types();
            field_infos(
                d.columns.iter().map(|(n, _)| n.as_str()).zip(types.iter()),
                format,
            )
        }
        Kind::Show { name } => vec![field_info(
            display_name(name),
            &DataType::Utf8,
            format.format_for(0),
        )],
        _ => Vec::new(),
    }
}

#[async_trait]
impl ExtendedQueryHandler for Session {
    type Statement = Prepared;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        Arc::clone(&self.parser)
    }

    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        target: &StoredStatement<Prepared>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let inferred: &[Option<DataType>] = match &target.statement.kind {
            Kind::Sql {
                described: Some(d), ..
            } => &d.params,
            _ => &[],
        };
        let count = inferred.len().max(target.parameter_types.len());
        let params = (0..count)
            .map(|i| {
                described_type(
                    target.parameter_types.get(i).and_then(Option::as_ref),
                    inferred.get(i).and_then(Option::as_ref),
                )
            })
            .collect();
        Ok(DescribeStatementResponse::new(
            params,
            result_fields(&target.statement, &Format::UnifiedText),
        ))
    }

    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        portal: &Portal<Prepared>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Ok(DescribePortalResponse::new(result_fields(
            &portal.statement.statement,
            &portal.result_column_format,
        )))
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &portal.statement.statement;
        if let Some(response) = aborted_transaction(client.transaction_status(), &prepared.kind)? {
            return Ok(response);
        }
        let params = match &prepared.kind {
            Kind::Sql {
                described: Some(d), ..
            } => Some(decode_params(
                &portal.parameters,
                &portal.parameter_format,
                &portal.statement.parameter_types,
                &d.params,
            )?),
            _ => None,
        };
        self.execute(client, prepared, params, &portal.result_column_format)
            .await
    }
}

/// Rejects a connection over `max_connections` once its startup packet
/// arrives, so the client sees PostgreSQL's error instead of a reset socket.
pub struct Reject;

#[async_trait]
impl StartupHandler for Reject {
    async fn on_startup<C>(
        &self,
        _client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(_) => Err(fatal_error(
                TOO_MANY_CONNECTIONS,
                "sorry, too many clients already",
            )),
            _ => Ok(()),
        }
    }
}

fn check_length(sql: &str, max: usize) -> PgWireResult<()> {
    if sql.len() > max {
        Err(pg_error(PROGRAM_LIMIT_EXCEEDED, "query is too long"))
    } else {
        Ok(())
    }
}

/// Splits a query string into statements with the PostgreSQL dialect, with PostgreSQL-only
/// syntax rewritten for DataFusion ([`pgcompat::rewrite`]). Comment-only and `;`-only
/// strings give no statements.
fn parse_sql(sql: &str) -> PgWireResult<Vec<DFStatement>> {
    let dialect = PostgreSqlDialect {};
    let statements = DFParserBuilder::new(sql)
        .with_dialect(&dialect)
        .build()
        .and_then(|mut p| p.parse_statements())
        .map_err(df_error)?;
    Ok(statements
        .into_iter()
        .map(|mut statement| {
            if let DFStatement::Statement(inner) = &mut statement {
                pgcompat::rewrite::rewrite(inner);
            }
            statement
        })
        .collect())
}

fn object_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => ident.value.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// `SET x = a, b` → `"a, b"`, unquoting string literals.
fn setting_value(values: &[SqlExpr]) -> String {
    values
        .iter()
        .map(|e| match e {
            SqlExpr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
                Value::Boolean(b) => if *b { "on" } else { "off" }.to_owned(),
                other => other.to_string(),
            },
            SqlExpr::Identifier(ident) => ident.value.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Canonical lower-case variable name (`time zone` → `timezone`).
fn variable_key(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "time zone" | "time.zone" => "timezone".to_owned(),
        "transaction isolation level" => "transaction_isolation".to_owned(),
        "names" => "client_encoding".to_owned(),
        _ => lower,
    }
}

/// Decides who answers a statement: the session (BEGIN, SET of PostgreSQL
/// variables, SHOW, …) or DataFusion.
fn classify(statement: DFStatement) -> Kind {
    session_kind(&statement).unwrap_or_else(|| sql_kind(statement))
}

/// The session-handled kinds; `None` for statements DataFusion runs.
fn session_kind(statement: &DFStatement) -> Option<Kind> {
    let sql = match statement {
        DFStatement::Statement(s) => s.as_ref(),
        DFStatement::Reset(ResetStatement::Variable(name)) => {
            let key = variable_key(&object_name(name));
            return SETTABLE.contains(&key.as_str()).then_some(Kind::Set {
                name: key,
                value: None,
            });
        }
        _ => return None,
    };
    Some(match sql {
        SqlStatement::StartTransaction { .. } => Kind::Begin,
        SqlStatement::Commit { .. } => Kind::Commit,
        SqlStatement::Rollback {
            savepoint: Some(_), ..
        } => Kind::Noop("ROLLBACK"),
        SqlStatement::Rollback { .. } => Kind::Rollback,
        SqlStatement::Savepoint { .. } => Kind::Noop("SAVEPOINT"),
        SqlStatement::ReleaseSavepoint { .. } => Kind::Noop("RELEASE"),
        SqlStatement::Discard { .. } => Kind::DiscardAll,
        // psycopg clears its server-side statements with DEALLOCATE ALL; protocol-level
        // statements are the driver's to close, SQL PREPAREs stay (DataFusion has no ALL).
        SqlStatement::Deallocate { name, .. } if name.value.eq_ignore_ascii_case("all") => {
            Kind::Noop("DEALLOCATE ALL")
        }
        SqlStatement::Set(Set::SingleAssignment {
            variable, values, ..
        }) => {
            let key = variable_key(&object_name(variable));
            if !SETTABLE.contains(&key.as_str()) {
                return None;
            }
            Kind::Set {
                name: key,
                value: Some(setting_value(values)),
            }
        }
        SqlStatement::Set(Set::SetTimeZone { value, .. }) => Kind::Set {
            name: "timezone".into(),
            value: Some(setting_value(std::slice::from_ref(value))),
        },
        SqlStatement::Set(Set::SetNames { charset_name, .. }) => Kind::Set {
            name: "client_encoding".into(),
            value: Some(charset_name.value.clone()),
        },
        SqlStatement::Set(Set::SetTransaction { .. }) => Kind::Noop("SET"),
        SqlStatement::ShowVariable { variable } => {
            let name = variable
                .iter()
                .map(|i| i.value.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let key = variable_key(&name);
            if key == "all" || key.starts_with("datafusion.") {
                return None;
            }
            Kind::Show { name: key }
        }
        _ => return None,
    })
}

fn sql_kind(statement: DFStatement) -> Kind {
    Kind::Sql {
        statement: Box::new(statement),
        described: None,
    }
}

/// How a plan's result reaches the client.
enum Outcome {
    /// Stream rows; tag `SELECT n`.
    Rows,
    /// One `count` row; tag `<command> n` (`INSERT 0 n` for inserts).
    Count(&'static str),
    /// No rows; tag is the command name (`CREATE VIEW`, …).
    Command(String),
}

fn outcome(plan: &LogicalPlan, statement: &DFStatement) -> Outcome {
    match plan {
        LogicalPlan::Dml(dml) => match &dml.op {
            WriteOp::Insert(_) => Outcome::Count("INSERT"),
            WriteOp::Update => Outcome::Count("UPDATE"),
            WriteOp::Delete => Outcome::Count("DELETE"),
            WriteOp::Ctas => Outcome::Count("SELECT"),
            WriteOp::MergeInto(_) => Outcome::Count("MERGE"),
            WriteOp::Truncate => Outcome::Command("TRUNCATE TABLE".into()),
            other => Outcome::Command(other.name().to_ascii_uppercase()),
        },
        LogicalPlan::Copy(_) => Outcome::Count("COPY"),
        // `EXECUTE name(…)` runs a prepared query and returns its rows.
        LogicalPlan::Statement(PlanStatement::Execute(_)) => Outcome::Rows,
        // DDL plans carry the schema of what they create, but return nothing.
        LogicalPlan::Ddl(_) | LogicalPlan::Statement(_) => Outcome::Command(command_tag(statement)),
        p if p.schema().fields().is_empty() => Outcome::Command(command_tag(statement)),
        _ => Outcome::Rows,
    }
}

/// `CREATE [OR REPLACE] VIEW v …` → `CREATE VIEW`; other commands → first word.
fn command_tag(statement: &DFStatement) -> String {
    let text = statement.to_string();
    let mut words = text.split_whitespace().map(str::to_ascii_uppercase);
    let Some(first) = words.next() else {
        return "OK".into();
    };
    if matches!(first.as_str(), "CREATE" | "DROP" | "ALTER") {
        let object = words.find(|w| {
            !matches!(
                w.as_str(),
                "OR" | "REPLACE" | "EXTERNAL" | "TEMPORARY" | "TEMP" | "UNBOUNDED" | "IF"
            )
        });
        if let Some(object) = object {
            return format!("{first} {object}");
        }
    }
    first
}

/// Parameter types (DataFusion's inference plus `CAST($n AS t)` hints) and
/// result columns of a freshly planned statement.
fn describe(plan: &LogicalPlan, statement: &DFStatement) -> PgWireResult<Described> {
    let inferred = plan.get_parameter_types().map_err(df_error)?;
    let mut hints: HashMap<String, DataType> = HashMap::new();
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) = e
                    && let Expr::Placeholder(Placeholder { id, field: None }) = expr.as_ref()
                {
                    hints
                        .entry(id.clone())
                        .or_insert_with(|| field.data_type().clone());
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })
    .map_err(df_error)?;

    let mut params: Vec<Option<DataType>> = Vec::new();
    for (id, dt) in &inferred {
        let index = id
            .strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| (1..=MAX_PARAMETERS).contains(n))
            .ok_or_else(|| {
                pg_error(
                    SYNTAX_ERROR,
                    format!("unsupported parameter {id}: use $1 … ${MAX_PARAMETERS}"),
                )
            })?;
        if params.len() < index {
            params.resize(index, None);
        }
        params[index - 1] = dt.clone().or_else(|| hints.get(id).cloned());
    }
    // Parameters only a table function's arguments use are not in the plan: described as
    // text, and bound into the statement when it runs (`table_args`).
    for index in super::table_args::table_arg_params(statement) {
        if !(1..=MAX_PARAMETERS).contains(&index) {
            return Err(pg_error(
                SYNTAX_ERROR,
                format!("unsupported parameter ${index}: use $1 … ${MAX_PARAMETERS}"),
            ));
        }
        if params.len() < index {
            params.resize(index, None);
        }
    }

    let columns = match outcome(plan, statement) {
        Outcome::Rows => plan
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect(),
        Outcome::Count(_) | Outcome::Command(_) => Vec::new(),
    };
    Ok(Described { params, columns })
}

/// Sum of the `count` column of a DML result.
pub(super) fn affected_rows(batches: &[RecordBatch]) -> usize {
    let total: u64 = batches
        .iter()
        .filter_map(|b| b.column_by_name("count"))
        .filter_map(|c| c.as_primitive_opt::<UInt64Type>())
        .flat_map(|a| a.iter().flatten())
        .sum();
    usize::try_from(total).unwrap_or(usize::MAX)
}

/// DataRows from a DataFusion stream, one batch in memory at a time.
fn row_stream(
    stream: SendableRecordBatchStream,
    mut encoder: RowEncoder,
    deadline: Option<tokio::time::Instant>,
    cancel: Option<tokio::sync::watch::Receiver<u64>>,
) -> impl Stream<Item = PgWireResult<DataRow>> + Send + 'static {
    until_stopped(stream, deadline, cancel).flat_map(move |batch| {
        let rows: Vec<PgWireResult<DataRow>> = match batch.and_then(|b| encoder.encode(&b)) {
            Ok(rows) => rows.into_iter().map(Ok).collect(),
            Err(datafusion::error::DataFusionError::External(e)) if e.is::<StatementTimeout>() => {
                vec![Err(timeout_error())]
            }
            Err(datafusion::error::DataFusionError::External(e)) if e.is::<Canceled>() => {
                vec![Err(PgWireError::QueryCanceled)]
            }
            Err(e) => vec![Err(df_error(e))],
        };
        futures::stream::iter(rows)
    })
}

/// The batches of `stream` until `deadline` or a cancel request; then one error (57014
/// either way), and the end (the query's execution is dropped with the stream).
fn until_stopped(
    stream: SendableRecordBatchStream,
    deadline: Option<tokio::time::Instant>,
    cancel: Option<tokio::sync::watch::Receiver<u64>>,
) -> impl Stream<Item = datafusion::error::Result<RecordBatch>> + Send + 'static {
    futures::stream::unfold(Some((stream, cancel)), move |state| async move {
        let (mut stream, mut cancel) = state?;
        let stop = |e: Box<dyn std::error::Error + Send + Sync>| {
            Some((Err(datafusion::error::DataFusionError::External(e)), None))
        };
        let expired = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => futures::future::pending().await,
            }
        };
        let canceled = async {
            let fired = match cancel.as_mut() {
                Some(signal) => signal.changed().await.is_ok(),
                None => false,
            };
            if !fired {
                futures::future::pending::<()>().await;
            }
        };
        tokio::select! {
            next = stream.next() => next.map(|batch| (batch, Some((stream, cancel)))),
            () = expired => stop(Box::new(StatementTimeout)),
            () = canceled => stop(Box::new(Canceled)),
        }
    })
}

/// A cancel request stopped a streaming result.
#[derive(Debug)]
struct Canceled;

impl std::fmt::Display for Canceled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("canceling statement due to user request")
    }
}

impl std::error::Error for Canceled {}

/// After an error inside BEGIN, PostgreSQL refuses everything until the transaction ends,
/// and a COMMIT then rolls back. `Ok(None)`: run the statement normally.
fn aborted_transaction(status: TransactionStatus, kind: &Kind) -> PgWireResult<Option<Response>> {
    if status != TransactionStatus::Error {
        return Ok(None);
    }
    match kind {
        Kind::Rollback => Ok(None),
        Kind::Commit => Ok(Some(Response::TransactionEnd(Tag::new("ROLLBACK")))),
        _ => Err(pg_error(
            IN_FAILED_SQL_TRANSACTION,
            "current transaction is aborted, commands ignored until end of transaction block",
        )),
    }
}

fn timeout_error() -> PgWireError {
    pg_error(QUERY_CANCELED, StatementTimeout.to_string())
}

/// `statement_timeout` as PostgreSQL reads it: a number is milliseconds; units `us`, `ms`,
/// `s`, `min`, `h`, `d`; 0 is no limit.
fn parse_timeout(value: &str) -> Option<std::time::Duration> {
    let value = value.trim().trim_matches('\'').trim();
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    let millis = match unit.trim() {
        "" | "ms" => number,
        "us" => number / 1000.0,
        "s" => number * 1000.0,
        "min" => number * 60_000.0,
        "h" => number * 3_600_000.0,
        "d" => number * 86_400_000.0,
        _ => return None,
    };
    (millis >= 1.0).then(|| std::time::Duration::from_micros((millis * 1000.0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_timeouts_parse_like_postgres() {
        use std::time::Duration;
        assert_eq!(parse_timeout("0"), None);
        assert_eq!(parse_timeout("250"), Some(Duration::from_millis(250)));
        assert_eq!(parse_timeout("'1.5s'"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_timeout("2min"), Some(Duration::from_secs(120)));
        assert_eq!(parse_timeout("10 ms"), Some(Duration::from_millis(10)));
        assert_eq!(parse_timeout("soon"), None);
    }

    fn kind(sql: &str) -> Kind {
        let mut statements = parse_sql(sql).expect("parses");
        assert_eq!(statements.len(), 1, "{sql}");
        classify(statements.remove(0))
    }

    #[test]
    fn session_statements_are_answered_locally() {
        assert!(matches!(
            kind("DEALLOCATE ALL"),
            Kind::Noop("DEALLOCATE ALL")
        ));
        assert!(matches!(kind("BEGIN"), Kind::Begin));
        assert!(matches!(kind("START TRANSACTION"), Kind::Begin));
        assert!(matches!(kind("COMMIT"), Kind::Commit));
        assert!(matches!(kind("ROLLBACK"), Kind::Rollback));
        assert!(matches!(
            kind("ROLLBACK TO SAVEPOINT s"),
            Kind::Noop("ROLLBACK")
        ));
        assert!(matches!(
            kind("SET application_name = 'x'"),
            Kind::Set { name, value: Some(v) } if name == "application_name" && v == "x"
        ));
        assert!(matches!(
            kind("SET DateStyle TO ISO, MDY"),
            Kind::Set { name, value: Some(v) } if name == "datestyle" && v == "ISO, MDY"
        ));
        assert!(matches!(
            kind("SET TIME ZONE 'UTC'"),
            Kind::Set { name, .. } if name == "timezone"
        ));
        assert!(matches!(
            kind("SHOW server_version"),
            Kind::Show { name } if name == "server_version"
        ));
        // DataFusion's own settings and queries go to DataFusion.
        assert!(matches!(
            kind("SET datafusion.execution.batch_size = 1024"),
            Kind::Sql { .. }
        ));
        assert!(matches!(kind("SHOW ALL"), Kind::Sql { .. }));
        assert!(matches!(kind("SELECT 1"), Kind::Sql { .. }));
    }

    #[test]
    fn empty_and_comment_only_queries_have_no_statements() {
        assert!(parse_sql("").expect("empty").is_empty());
        assert!(parse_sql(" ; ;").expect("semicolons").is_empty());
        assert!(parse_sql("-- ping").expect("comment").is_empty());
        assert!(parse_sql("/* x */").expect("block comment").is_empty());
        assert_eq!(parse_sql("SELECT 1; SELECT 2").expect("two").len(), 2);
    }

    #[test]
    fn command_tags() {
        let tag = |sql: &str| command_tag(&parse_sql(sql).expect("parses")[0]);
        assert_eq!(tag("CREATE OR REPLACE VIEW v AS SELECT 1"), "CREATE VIEW");
        assert_eq!(tag("DROP TABLE IF EXISTS t"), "DROP TABLE");
        assert_eq!(
            tag("CREATE EXTERNAL TABLE t STORED AS CSV LOCATION 'x'"),
            "CREATE TABLE"
        );
    }

    #[test]
    fn only_loopback_peers() {
        for ip in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["192.0.2.2", "10.0.0.1", "::ffff:10.0.0.1", "fd00::2"] {
            assert!(!is_loopback(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[test]
    fn variables_set_reset_and_report() {
        let mut vars = Vars::default();
        vars.set("application_name", "a".into());
        assert_eq!(
            vars.get("application_name"),
            Some(("application_name", "a"))
        );
        vars.reset("application_name");
        assert_eq!(vars.get("application_name"), Some(("application_name", "")));
        assert_eq!(vars.get("datestyle"), Some(("DateStyle", "ISO, MDY")));
        assert!(is_utf8_name("utf-8") && is_utf8_name("UTF8") && !is_utf8_name("LATIN1"));
    }
}

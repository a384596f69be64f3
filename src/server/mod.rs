//! The PostgreSQL wire-protocol endpoint.
//!
//! Shaped like tokio's mini-redis server: [`run`] accepts connections until
//! its `shutdown` future completes, each connection runs in its own task
//! (limited by a semaphore), and shutdown is broadcast to every connection,
//! which finishes its current query and closes. Protocol handling is pgwire's;
//! this module decides what each message means for DataFusion.

mod copy;
pub(crate) mod encode;
mod params;
mod session;
pub mod sqlstate;
mod table_args;
#[cfg(test)]
mod tests;
mod tls;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use datafusion::error::DataFusionError;
use futures::{SinkExt, StreamExt};
use pgwire::api::auth::StartupHandler;
use pgwire::api::cancel::CancelHandler;
use pgwire::api::copy::CopyHandler;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::{
    ClientInfo, ConnectionManager, NoopHandler, PgWireConnectionState, RandomPidSecretKeyGenerator,
};
use pgwire::error::{ErrorInfo, PgWireError, SEVERITY_ERROR, SEVERITY_FATAL};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::server::{negotiate_tls, process_error, process_message};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::Engine;
pub use session::SERVER_VERSION;
pub(crate) use session::VARIABLES;
use session::{Reject, Session};
pub use tls::Tls;

/// Limits of the endpoint.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Concurrent client connections; more are refused with SQLSTATE 53300.
    pub max_connections: usize,
    /// Longest accepted query text in bytes; longer ones fail with 54000.
    pub max_query_bytes: usize,
    /// Offer TLS (SSLRequest and direct TLS).
    pub tls: Option<Tls>,
    /// Refuse clients that did not negotiate TLS (SQLSTATE 28000).
    pub require_tls: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            max_connections: 100,
            max_query_bytes: 1024 * 1024,
            tls: None,
            require_tls: false,
        }
    }
}

/// How long a client may take to finish the startup handshake.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// A refused client only gets this long to send its startup packet.
const REJECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long shutdown waits for running queries before aborting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Error messages are cut to this many bytes: pgwire refuses to encode
/// oversized ErrorResponses, which would drop the connection instead.
const MAX_ERROR_MESSAGE: usize = 8 * 1024;

/// State shared by all connections.
pub(crate) struct Shared {
    engine: Engine,
    options: ServerOptions,
    pids: RandomPidSecretKeyGenerator,
    cancels: Arc<ConnectionManager>,
    /// Per connection, a counter bumped by each valid cancel request.
    cancel_signals: Arc<CancelSignals>,
}

/// What a cancel request reaches besides pgwire's own handle (which stops a query while it
/// plans, and a simple-protocol query while it runs): a per-connection counter that a
/// streaming result watches, so a cancel also stops rows an extended-protocol Execute is
/// still sending.
#[derive(Default)]
pub(crate) struct CancelSignals {
    by_pid: std::sync::Mutex<std::collections::HashMap<i32, watch::Sender<u64>>>,
}

impl CancelSignals {
    fn signals(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<i32, watch::Sender<u64>>> {
        self.by_pid.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Watch the cancel requests of connection `pid`.
    pub(crate) fn register(&self, pid: i32) -> watch::Receiver<u64> {
        let (tx, rx) = watch::channel(0);
        self.signals().insert(pid, tx);
        rx
    }

    pub(crate) fn unregister(&self, pid: i32) {
        self.signals().remove(&pid);
    }
}

/// pgwire's cancel, then the connection's signal; only for a valid (pid, secret) pair.
struct Cancels {
    manager: Arc<ConnectionManager>,
    signals: Arc<CancelSignals>,
}

#[async_trait::async_trait]
impl CancelHandler for Cancels {
    async fn on_cancel_request(&self, request: CancelRequest) {
        if self.manager.cancel(request.pid, &request.secret_key).await
            && let Some(signal) = self.signals.signals().get(&request.pid)
        {
            signal.send_modify(|n| *n += 1);
        }
    }
}

/// Serve until `shutdown` completes; then stop accepting, let connections
/// finish (bounded wait), return.
pub async fn run(
    listener: TcpListener,
    engine: Engine,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> crate::Result<()> {
    let permits = Arc::new(Semaphore::new(
        options.max_connections.min(Semaphore::MAX_PERMITS),
    ));
    let shared = Arc::new(Shared {
        engine,
        options,
        pids: RandomPidSecretKeyGenerator::default(),
        cancels: Arc::new(ConnectionManager::new()),
        cancel_signals: Arc::new(CancelSignals::default()),
    });
    let cancel_handler = Arc::new(Cancels {
        manager: Arc::clone(&shared.cancels),
        signals: Arc::clone(&shared.cancel_signals),
    });
    let (notify_shutdown, _) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut backoff = Duration::from_millis(10);
    tokio::pin!(shutdown);

    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "accepting PostgreSQL connections");
    }
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        // Reap finished connections so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
        let (socket, peer) = match accepted {
            Ok(accepted) => {
                backoff = Duration::from_millis(10);
                accepted
            }
            Err(e) => {
                // Usually fd exhaustion: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let stop = notify_shutdown.subscribe();
        let cancel = Arc::clone(&cancel_handler);
        let tls = shared.options.tls.clone();
        match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => {
                let shared = Arc::clone(&shared);
                connections.spawn(async move {
                    let _permit = permit;
                    // Built here, not in the accept loop: a DataFusion session
                    // is not free, and accepting must not wait for it.
                    let session = Arc::new(Session::new(shared));
                    let handlers = Handlers {
                        startup: Arc::clone(&session),
                        simple: Arc::clone(&session),
                        extended: Arc::clone(&session),
                        copy: session,
                        cancel,
                    };
                    let result = serve(socket, tls, handlers, stop, STARTUP_TIMEOUT).await;
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            Err(_) => {
                tracing::warn!(%peer, "refusing connection: max_connections reached");
                connections.spawn(async move {
                    let noop = Arc::new(NoopHandler);
                    let handlers = Handlers {
                        startup: Arc::new(Reject),
                        simple: Arc::clone(&noop),
                        extended: Arc::clone(&noop),
                        copy: noop,
                        cancel,
                    };
                    let _ = serve(socket, tls, handlers, stop, REJECT_TIMEOUT).await;
                });
            }
        }
    }

    drop(listener);
    tracing::info!("shutting down: waiting for connections to finish");
    let _ = notify_shutdown.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            remaining = connections.len(),
            "connections still busy after the shutdown grace period; aborting them"
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
    Ok(())
}

/// Resolves once shutdown is signalled (or the server is gone).
async fn shutdown_signalled(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// What answers each kind of message on one connection.
struct Handlers<A, Q, EQ, CP, CR> {
    startup: Arc<A>,
    simple: Arc<Q>,
    extended: Arc<EQ>,
    copy: Arc<CP>,
    cancel: Arc<CR>,
}

/// One connection's message loop. Like pgwire's `process_socket`, but it
/// waits for either the next message or shutdown, so an idle connection
/// closes at once while a running query completes first.
async fn serve<A, Q, EQ, CP, CR>(
    socket: TcpStream,
    tls: Option<Tls>,
    handlers: Handlers<A, Q, EQ, CP, CR>,
    mut stop: watch::Receiver<bool>,
    startup_timeout: Duration,
) -> io::Result<()>
where
    A: StartupHandler,
    Q: SimpleQueryHandler,
    EQ: ExtendedQueryHandler,
    CP: CopyHandler,
    CR: CancelHandler,
{
    let Handlers {
        startup,
        simple,
        extended,
        copy,
        cancel,
    } = handlers;
    let deadline = tokio::time::sleep(startup_timeout);
    tokio::pin!(deadline);
    let negotiated = tokio::select! {
        () = &mut deadline => return Ok(()),
        () = shutdown_signalled(&mut stop) => return Ok(()),
        negotiated = negotiate_tls::<EQ::Statement>(socket, tls.map(|t| t.0)) => negotiated?,
    };
    // `None`: the client started a direct TLS handshake, and TLS is not configured.
    let Some(mut socket) = negotiated else {
        return Ok(());
    };
    loop {
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        let message = tokio::select! {
            () = shutdown_signalled(&mut stop) => {
                let info = ErrorInfo::new(
                    SEVERITY_FATAL.to_owned(),
                    sqlstate::ADMIN_SHUTDOWN.to_owned(),
                    "terminating connection due to administrator command".to_owned(),
                );
                let _ = socket.send(PgWireBackendMessage::ErrorResponse(info.into())).await;
                break;
            }
            () = &mut deadline, if starting => break,
            message = socket.next() => message,
        };
        let Some(Ok(message)) = message else { break };
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        let in_extended_query = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        let is_cancel_request = matches!(message, PgWireFrontendMessage::CancelRequest(_));
        let result = process_message(
            message,
            &mut socket,
            Arc::clone(&startup),
            Arc::clone(&simple),
            Arc::clone(&extended),
            Arc::clone(&copy),
            Arc::clone(&cancel),
        )
        .await;
        if let Err(error) = result {
            let fatal = error.is_fatal();
            process_error(&mut socket, shorten(error), in_extended_query).await?;
            if fatal {
                break;
            }
        }
        if is_cancel_request {
            break;
        }
    }
    Ok(())
}

/// An ERROR-severity error with a SQLSTATE; the connection stays usable.
pub(crate) fn pg_error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        SEVERITY_ERROR.to_owned(),
        code.to_owned(),
        message.into(),
    )))
}

/// A FATAL error: sent, then the connection is closed.
pub(crate) fn fatal_error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        SEVERITY_FATAL.to_owned(),
        code.to_owned(),
        message.into(),
    )))
}

/// A DataFusion error as the client sees it: its SQLSTATE and message.
pub(crate) fn df_error(e: DataFusionError) -> PgWireError {
    pg_error(sqlstate::sqlstate_for(&e), e.strip_backtrace())
}

/// Caps an error's message length (see [`MAX_ERROR_MESSAGE`]).
fn shorten(error: PgWireError) -> PgWireError {
    match error {
        PgWireError::UserError(mut info) if info.message.len() > MAX_ERROR_MESSAGE => {
            let mut end = MAX_ERROR_MESSAGE;
            while !info.message.is_char_boundary(end) {
                end -= 1;
            }
            info.message.truncate(end);
            info.message.push('…');
            PgWireError::UserError(info)
        }
        other => other,
    }
}

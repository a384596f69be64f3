//! The server's background work — budget monitor, report scheduler — on a runtime of its
//! own: one worker thread at a lower CPU priority.
//!
//! Their queries (budget status and anomaly scans over the whole history, scheduled
//! reports) are as heavy as a user's. On the wire server's runtime they would take half of
//! a 2-core machine from the first query after start, and DataFusion spreads whatever a
//! query spawns over the runtime it runs on; here they have one thread, which the kernel
//! runs when users' threads leave it room.

use std::future::Future;
use std::thread::JoinHandle;

/// The background threads' nice value (of 19), unless the process's is higher already.
const NICENESS: i32 = 10;

/// Background tasks running on their own thread; [`Background::join`] waits for them.
#[derive(Debug)]
pub struct Background {
    thread: JoinHandle<()>,
}

impl Background {
    /// Start `work` (futures that end on shutdown) on a background runtime.
    pub fn spawn<F>(work: F) -> std::io::Result<Background>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(8)
            .thread_name("spendql-background")
            .on_thread_start(lower_priority)
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("spendql-background".into())
            .spawn(move || {
                lower_priority();
                runtime.block_on(work);
                // Deliveries still retrying are abandoned, as on any shutdown.
                runtime.shutdown_background();
            })?;
        Ok(Background { thread })
    }

    /// Wait for the work to end (after shutdown has been signalled), without blocking the
    /// caller's runtime.
    pub async fn join(self) -> Result<(), String> {
        tokio::task::spawn_blocking(move || self.thread.join())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|_| "a background task panicked".to_string())
    }
}

/// Lower the calling thread's CPU priority (Linux: nice values are per thread, and threads
/// it starts inherit it). Best effort: without it, the work still runs on one thread.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getpriority and setpriority read only their integer arguments. `who` = 0
        // is the calling thread on Linux, where the nice value is a per-thread attribute.
        let current = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, current.max(NICENESS)) };
        if result != 0 {
            tracing::debug!(
                "could not lower the background threads' priority: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn background_work_runs_at_a_lower_priority() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let background = Background::spawn(async move {
            // The nice value of this worker thread, read where the work runs.
            // SAFETY: getpriority reads only its integer arguments.
            let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
            let _ = tx.send(nice);
        })
        .unwrap();
        let nice = rx.await.unwrap();
        background.join().await.unwrap();
        // SAFETY: as above.
        let ours = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        assert_eq!(nice, ours.max(NICENESS));
    }
}

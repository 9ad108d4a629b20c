//! A run's stop signal. A signal handler (or a test) asks the run to stop; steps then finish the
//! batch they have in flight, start nothing more, and report themselves interrupted. What they
//! committed stays committed, what they did not stays pending: the next run converges.

use tokio::sync::watch;

/// The side that asks a run to stop.
#[derive(Debug)]
pub struct StopHandle(watch::Sender<bool>);

impl StopHandle {
    /// Asks every [`Stop`] made from this handle to stop. Asking twice does nothing more.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

/// The side a run watches; `Stop::default()` never stops.
#[derive(Debug, Clone, Default)]
pub struct Stop(Option<watch::Receiver<bool>>);

impl Stop {
    pub fn new() -> (StopHandle, Stop) {
        let (tx, rx) = watch::channel(false);
        (StopHandle(tx), Stop(Some(rx)))
    }

    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        self.0.as_ref().is_some_and(|rx| *rx.borrow())
    }

    /// Returns once a stop is asked for; never for a `Stop` that cannot be stopped.
    pub async fn wait(&self) {
        match &self.0 {
            Some(rx) => {
                let mut rx = rx.clone();
                // An error means the handle is gone: nobody can ask any more.
                if rx.wait_for(|stop| *stop).await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stop_is_seen_by_every_clone_and_wakes_waiters() {
        let (handle, stop) = Stop::new();
        let other = stop.clone();
        assert!(!stop.requested());
        let waiter = tokio::spawn(async move { other.wait().await });
        handle.stop();
        waiter.await.unwrap();
        assert!(stop.requested());
        assert!(!Stop::default().requested());
    }
}

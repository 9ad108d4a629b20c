//! Retrying transient failures with exponential backoff and full jitter.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub initial_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// A policy for tests: quick, few attempts.
    pub fn quick() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
        }
    }

    /// The delay before retry number `attempt` (1-based): a random duration up to
    /// `initial * 2^(attempt-1)`, capped; a server's `Retry-After` is honoured as a minimum.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .initial_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let cap = exp.min(self.max_delay);
        let jittered =
            Duration::from_secs_f64(rand::thread_rng().gen_range(0.0..=1.0) * cap.as_secs_f64());
        match retry_after {
            Some(after) => jittered.max(after.min(Duration::from_secs(120))),
            None => jittered.max(self.initial_delay / 2),
        }
    }
}

/// What the retry loop needs to know about an error.
pub trait Retryable {
    fn is_transient(&self) -> bool;
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

impl Retryable for crate::step::StepError {
    fn is_transient(&self) -> bool {
        crate::step::StepError::is_transient(self) && !self.retried
    }
    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl Retryable for crate::store::StoreError {
    fn is_transient(&self) -> bool {
        crate::store::StoreError::is_transient(self)
    }
}

/// Runs `op` until it succeeds, fails with a non-transient error, or runs out of attempts.
pub async fn retry<T, E, F, Fut>(policy: &RetryPolicy, what: &str, mut op: F) -> Result<T, E>
where
    E: Retryable + std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && attempt < policy.max_attempts => {
                let delay = policy.delay(attempt, e.retry_after());
                tracing::warn!(what, attempt, delay_ms = delay.as_millis() as u64, error = %e, "transient failure, retrying");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::StepError;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn transient_errors_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let r: Result<u32, StepError> = retry(&RetryPolicy::quick(), "t", || async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            if n < 3 {
                Err(StepError::transient("reset"))
            } else {
                Ok(n)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 3);
    }

    #[tokio::test]
    async fn other_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let r: Result<(), StepError> = retry(&RetryPolicy::quick(), "t", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(StepError::data("bad row"))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn delays_grow_are_capped_and_honour_retry_after() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        for attempt in 1..10 {
            assert!(p.delay(attempt, None) <= Duration::from_secs(1));
        }
        assert!(p.delay(1, Some(Duration::from_secs(3))) >= Duration::from_secs(3));
    }
}

//! A step's errors, classified by who is at fault: the class decides whether the engine
//! retries, splits the batch, or stops the step.

use std::time::Duration;

/// Who is at fault, which decides what the engine does with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// A passing fault (timeout, connection reset, 429, 5xx, serialization failure): retried with
    /// backoff; if it persists the step stops, and its keys stay pending for the next run.
    Transient,
    /// Something about the data of some key(s): the batch is split until the bad keys are found;
    /// they are recorded as failed and retried next run, the others go on.
    Data,
    /// Nothing will work until a person fixes something (credentials, configuration, a missing
    /// table): the step stops at once.
    Fatal,
}

/// An error from a step, classified.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StepError {
    pub class: ErrorClass,
    pub message: String,
    /// A server's request to wait before retrying (HTTP `Retry-After`).
    pub retry_after: Option<Duration>,
    /// The connector retried it already (its own layer of retries): the engine does not again.
    pub retried: bool,
    /// The run was asked to stop (see [`crate::runner::Stop`]); not a fault of anyone.
    pub interrupted: bool,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StepError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        StepError {
            class,
            message: message.into(),
            retry_after: None,
            retried: false,
            interrupted: false,
            source: None,
        }
    }

    /// What a step returns when it stops because the run was asked to: it started nothing
    /// after its last committed batch.
    pub fn interrupted() -> Self {
        StepError {
            interrupted: true,
            ..Self::fatal("the run was asked to stop")
        }
    }

    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Transient, message)
    }

    pub fn data(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Data, message)
    }

    pub fn fatal(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Fatal, message)
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub fn with_retry_after(mut self, after: Option<Duration>) -> Self {
        self.retry_after = after;
        self
    }

    pub fn is_transient(&self) -> bool {
        self.class == ErrorClass::Transient
    }

    /// Marks a transient error its connector has already retried: the engine then stops the
    /// step with it (its keys stay pending) instead of retrying on top, so that retries happen
    /// in one layer only.
    pub fn already_retried(mut self) -> Self {
        self.retried = true;
        self
    }

    /// The message with its whole source chain, for the record of a failed key.
    pub fn chain(&self) -> String {
        let mut text = self.message.clone();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            let s_text = s.to_string();
            if !text.contains(&s_text) {
                text.push_str(": ");
                text.push_str(&s_text);
            }
            source = s.source();
        }
        text
    }
}

//! `--every`: durations as users write them (`30s`, `5m`, `1h30m`, `90d`), the wait between two
//! runs (the interval, a little jitter, a capped backoff after failures), and the signals that
//! stop a run or a loop (SIGTERM, SIGINT; a second one ends the process at once).

use std::time::Duration;

use etl_core::runner::{Stop, StopHandle};

/// Parses `30s`, `5m`, `2h`, `90d`, or a sum such as `1h30m`. A bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("an empty duration (write e.g. 30s, 5m, 1h)".into());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(format!("`{text}`: unknown unit `{c}` (use s, m, h or d)")),
        };
        let n: u64 = number
            .parse()
            .map_err(|_| format!("`{text}`: a number must come before `{c}`"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        number.clear();
    }
    if !number.is_empty() {
        return Err(format!(
            "`{text}`: `{number}` has no unit (use s, m, h or d)"
        ));
    }
    if total == 0 {
        return Err(format!("`{text}`: the duration must be more than zero"));
    }
    Ok(Duration::from_secs(total))
}

/// The wait before the next run: the interval after a run that did not fail; after
/// `failures` failed runs in a row, the interval doubled per failure, capped at the larger of
/// the interval and an hour. Plus up to a tenth of it at random (`jitter` in [0, 1)), so that
/// loops started together drift apart.
pub fn next_wait(interval: Duration, failures: u32, jitter: f64) -> Duration {
    let cap = interval.max(Duration::from_secs(3600));
    let base = interval
        .checked_mul(1u32 << failures.min(16))
        .unwrap_or(cap)
        .min(cap);
    base + base.mul_f64(jitter.clamp(0.0, 1.0) / 10.0)
}

/// A number in [0, 1) that differs from one call to the next; enough for jitter.
pub fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ std::process::id().wrapping_mul(2_654_435_761))
        .unwrap_or_default();
    f64::from(nanos % 1_000_000) / 1_000_000.0
}

/// Installs the handlers of SIGTERM and SIGINT: the first asks the run (and the loop) to stop
/// after the batch in flight; the second ends the process at once (exit 130; what committed
/// stays committed).
pub fn stop_on_signals() -> Stop {
    let (handle, stop) = Stop::new();
    tokio::spawn(watch_signals(handle));
    stop
}

async fn watch_signals(handle: StopHandle) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot listen for SIGTERM/SIGINT: a signal ends the run at once");
        return;
    };
    for n in 0.. {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        if n == 0 {
            tracing::warn!(
                signal = name,
                "stopping: the batches in flight finish, then etl exits (again to exit at once)"
            );
            handle.stop();
        } else {
            tracing::warn!(signal = name, "exiting at once");
            std::process::exit(130);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_users_write_them() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        for bad in ["", "m", "5x", "0s", "5m3", "-5m"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn failures_back_off_doubling_up_to_a_cap() {
        let i = Duration::from_secs(300);
        assert_eq!(next_wait(i, 0, 0.0), i);
        assert_eq!(next_wait(i, 1, 0.0), Duration::from_secs(600));
        assert_eq!(next_wait(i, 3, 0.0), Duration::from_secs(2400));
        assert_eq!(next_wait(i, 10, 0.0), Duration::from_secs(3600));
        assert_eq!(next_wait(i, 40, 0.0), Duration::from_secs(3600));
        // A long interval is its own cap.
        let day = Duration::from_secs(86_400);
        assert_eq!(next_wait(day, 5, 0.0), day);
        // Jitter adds at most a tenth.
        let w = next_wait(i, 0, 0.999);
        assert!(w > i && w < i + i / 10 + Duration::from_secs(1));
    }
}

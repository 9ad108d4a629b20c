//! Progress on a terminal: a bar per running step. Elsewhere the log lines say it all.

use std::collections::HashMap;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use etl_core::runner::Progress;

#[derive(Default)]
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Progress for Bars {
    fn started(&self, step: &str, total_keys: Option<u64>) {
        let bar = match total_keys {
            Some(n) => {
                let b = self.multi.add(ProgressBar::new(n));
                b.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>24} [{bar:30}] {pos}/{len} keys {elapsed}",
                    )
                    .expect("template")
                    .progress_chars("=> "),
                );
                b
            }
            None => {
                let b = self.multi.add(ProgressBar::new_spinner());
                b.set_style(
                    ProgressStyle::with_template("{prefix:>24} {spinner} reading {elapsed}")
                        .expect("template"),
                );
                b.enable_steady_tick(std::time::Duration::from_millis(120));
                b
            }
        };
        bar.set_prefix(step.to_string());
        self.bars
            .lock()
            .expect("bars")
            .insert(step.to_string(), bar);
    }

    fn advanced(&self, step: &str, keys: u64) {
        if let Some(b) = self.bars.lock().expect("bars").get(step) {
            b.inc(keys);
        }
    }

    fn finished(&self, step: &str) {
        if let Some(b) = self.bars.lock().expect("bars").remove(step) {
            b.finish_and_clear();
        }
    }
}

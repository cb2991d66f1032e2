//! The progress bar `bench run` draws on stderr.

use harness::pipeline::Progress;
use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar on stderr, hidden when stderr is not a terminal.
pub struct Bar(pub Option<ProgressBar>);

impl Progress for Bar {
    fn start(&mut self, phase: &str, total: usize) {
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template("{prefix:>22} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(phase.to_string());
        self.0 = Some(bar);
    }
    fn step(&mut self, label: &str) {
        if let Some(b) = &self.0 {
            b.set_message(label.to_string());
            b.inc(1);
        }
    }
    fn finish(&mut self) {
        if let Some(b) = self.0.take() {
            b.finish_and_clear();
        }
    }
}

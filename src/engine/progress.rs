//! What a person watching a run sees: an indicatif bar over the plan's length with a live line
//! (stage, users started, connected, connects/s, p99 connect, errors), refreshed by the 1 s
//! collector. Quiet when stderr is not a terminal or `--quiet` was given: then one plain line
//! every 10 s, so CI logs still show the run moving without drowning in redraws.

use crate::metrics::LiveView;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// The live display of one run.
pub struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
    last_plain: Duration,
}

impl Progress {
    /// A display for a plan of `total` length; `quiet` turns the bar off.
    pub fn new(total: Duration, quiet: bool) -> Self {
        let interactive = !quiet && std::io::stderr().is_terminal();
        let bar = interactive.then(|| {
            let bar = ProgressBar::with_draw_target(Some(total.as_millis() as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30.cyan/blue} {percent:>3}% {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar
        });
        Self {
            bar,
            quiet,
            last_plain: Duration::ZERO,
        }
    }

    /// Shows the latest figures.
    pub fn update(&mut self, stage: &str, started: u64, view: &LiveView) {
        let p99 = view
            .connect_p99_us
            .map_or_else(|| "-".to_owned(), |us| format!("{:.1}ms", us as f64 / 1000.0));
        let line = format!(
            "{stage} | started {started} | connected {} (long-poll {}) | {:.0} connects/s | p99 connect {p99} | errors {} (+{})",
            view.connected, view.longpolling, view.connects_per_s, view.errors_total, view.errors
        );
        if let Some(bar) = &self.bar {
            bar.set_position(view.elapsed.as_millis() as u64);
            bar.set_message(line);
        } else if !self.quiet && view.elapsed >= self.last_plain + Duration::from_secs(10) {
            self.last_plain = view.elapsed;
            eprintln!("chatstorm: {:>4}s {line}", view.elapsed.as_secs());
        }
    }

    /// Prints a one-off line without breaking the bar.
    pub fn note(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None if !self.quiet => eprintln!("chatstorm: {line}"),
            None => {}
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

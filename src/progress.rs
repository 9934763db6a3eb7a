//! Progress display for long stages, on stderr when it is a terminal (nothing when it is piped
//! or `--quiet` is set): a spinner with a count and a whole-number rate, or, for reading a
//! file, a bar with the percentage of its bytes read and an ETA.

use std::io::{IsTerminal, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use indicatif::{
    HumanCount, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle,
};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Turns progress display off for the whole process (`--quiet`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

fn shown() -> bool {
    !QUIET.load(Ordering::Relaxed) && std::io::stderr().is_terminal()
}

/// Every bar of the process, drawn together: stages that run at once (the tables a load
/// reads in parallel) each keep their own line.
fn lines() -> &'static MultiProgress {
    static LINES: std::sync::OnceLock<MultiProgress> = std::sync::OnceLock::new();
    LINES.get_or_init(MultiProgress::new)
}

/// A counter shown as `label: N rows (R/s)` while a stage runs, or for a file
/// ([`Progress::for_file`]) a bar of its bytes read.
pub struct Progress {
    bar: Option<ProgressBar>,
    /// Items counted (rows), shown next to a file's bar.
    items: Arc<AtomicU64>,
    /// Bytes of the file read so far, shared with its [`CountingReader`].
    bytes: Option<ByteCount>,
}

impl Progress {
    /// A spinner: `label: N unit (R/s)`.
    pub fn new(label: &str, unit: &str) -> Progress {
        let bar = shown().then(|| {
            let bar = ProgressBar::new_spinner();
            let template = format!("{{spinner}} {label}: {{human_pos}} {unit} ({{rate}}/s)");
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style.with_key(
                    "rate",
                    |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{}", whole_rate(state.pos(), state.elapsed()));
                    },
                ));
            }
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            lines().add(bar)
        });
        Progress {
            bar,
            items: Arc::default(),
            bytes: None,
        }
    }

    /// A bar for reading one file of `size` bytes (compressed or not, as on disk):
    /// `label [####----] 42% 120 MiB/286 MiB, 1,234,567 unit (R/s), ETA 12s`. The bytes come
    /// from `bytes`, which the file's [`CountingReader`] advances; [`Progress::inc`] counts
    /// `unit`s.
    pub fn for_file(label: &str, unit: &str, size: u64, bytes: ByteCount) -> Progress {
        let draw = if shown() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let mut progress = Self::for_file_to(label, unit, size, bytes, draw);
        progress.bar = progress.bar.take().map(|bar| lines().add(bar));
        progress
    }

    fn for_file_to(
        label: &str,
        unit: &str,
        size: u64,
        bytes: ByteCount,
        draw: ProgressDrawTarget,
    ) -> Progress {
        let items = Arc::new(AtomicU64::new(0));
        let bar = (!draw.is_hidden()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(size.max(1)), draw);
            let template = format!(
                "{label} [{{bar:30}}] {{percent:>3}}% {{bytes}}/{{total_bytes}}, {{items}} {unit} ({{items_rate}}/s), ETA {{eta}}"
            );
            let counted = items.clone();
            let counted_rate = items.clone();
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(
                    style
                        .progress_chars("#>-")
                        .with_key("items", move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                            let _ = write!(w, "{}", HumanCount(counted.load(Ordering::Relaxed)));
                        })
                        .with_key("items_rate", move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                            let items = counted_rate.load(Ordering::Relaxed);
                            let _ = write!(w, "{}", whole_rate(items, state.elapsed()));
                        }),
                );
            }
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            // Drawn at once: with a steady tick, updates do not draw, and a small file would
            // be read before the first tick.
            bar.force_draw();
            bar
        });
        Progress {
            bar,
            items,
            bytes: Some(bytes),
        }
    }

    /// Counts `n` more items (and, for a file, shows the bytes read so far).
    pub fn inc(&self, n: u64) {
        let Some(bar) = &self.bar else { return };
        match &self.bytes {
            Some(bytes) => {
                self.items.fetch_add(n, Ordering::Relaxed);
                bar.set_position(bytes.get());
            }
            None => bar.inc(n),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `count / elapsed` as a whole number with thousands separators (`259,397`).
fn whole_rate(count: u64, elapsed: std::time::Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        (count as f64 / secs).round() as u64
    } else {
        0
    };
    HumanCount(rate).to_string()
}

/// Bytes read from a file so far; cheap to clone and to read from another thread.
#[derive(Clone, Debug, Default)]
pub struct ByteCount(Arc<AtomicU64>);

impl ByteCount {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A reader adapter that adds every byte read through it to a [`ByteCount`]. Put it right on
/// the file, under any decompressor, so the count compares with the file's size on disk.
pub struct CountingReader<R> {
    inner: R,
    count: ByteCount,
}

impl<R: Read> CountingReader<R> {
    pub fn new(inner: R, count: ByteCount) -> Self {
        CountingReader { inner, count }
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.0.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Mutex;

    #[test]
    fn counting_reader_counts_the_compressed_bytes_under_a_decompressor() {
        let text = "id,name\n".repeat(10_000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        let compressed = gz.finish().unwrap();
        let count = ByteCount::default();
        let mut decoded = String::new();
        flate2::read::MultiGzDecoder::new(CountingReader::new(&compressed[..], count.clone()))
            .read_to_string(&mut decoded)
            .unwrap();
        assert_eq!(decoded, text);
        assert_eq!(count.get(), compressed.len() as u64);
    }

    /// A terminal that keeps what is drawn on it.
    #[derive(Clone, Debug, Default)]
    struct Screen(Arc<Mutex<String>>);

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            160
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            let mut screen = self.0.lock().unwrap();
            screen.push_str(s);
            screen.push('\n');
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_file_bar_shows_the_share_of_bytes_read_an_eta_and_a_whole_number_rate() {
        let screen = Screen::default();
        let bytes = ByteCount::default();
        let progress = Progress::for_file_to(
            "loading users.csv",
            "rows",
            1000,
            bytes.clone(),
            ProgressDrawTarget::term_like(Box::new(screen.clone())),
        );
        bytes.0.store(420, Ordering::Relaxed);
        progress.inc(2_946_378);
        progress.bar.as_ref().unwrap().force_draw();
        let drawn = screen.0.lock().unwrap().clone();
        let line = drawn
            .lines()
            .rfind(|l| l.contains("rows"))
            .unwrap_or_else(|| panic!("nothing drawn: {drawn:?}"))
            .to_string();
        assert!(line.starts_with("loading users.csv ["), "{line}");
        assert!(
            line.contains(" 42% 420 B/1000 B, 2,946,378 rows ("),
            "{line}"
        );
        assert!(line.contains(", ETA "), "{line}");
        let rate = line
            .split(" rows (")
            .nth(1)
            .and_then(|rest| rest.split("/s)").next())
            .unwrap_or_default();
        assert!(
            !rate.is_empty() && rate.chars().all(|c| c.is_ascii_digit() || c == ','),
            "the rate is not a whole number: {rate:?} in {line}"
        );
    }

    #[test]
    fn whole_rate_rounds_and_groups_thousands() {
        let rate = whole_rate(2_946_378, std::time::Duration::from_secs(10));
        assert_eq!(rate, "294,638");
        assert_eq!(whole_rate(5, std::time::Duration::ZERO), "0");
    }
}

//! The lines a child process writes, read on a thread so that every wait is bounded.

use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A child's output, line by line.
pub struct Lines {
    rx: mpsc::Receiver<String>,
    /// Every line read so far (shown when a wait fails).
    pub seen: Vec<String>,
    /// The longest one wait may take.
    limit: Duration,
}

impl Lines {
    /// Read `reader` on a thread; each [`Lines::wait_for`] waits at most `limit`.
    pub fn of(reader: impl Read + Send + 'static, limit: Duration) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
            limit,
        }
    }

    /// The next line containing `needle` (bounded).
    pub fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + self.limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line containing {needle:?}; saw:\n{}", self.seen.join("\n")),
            }
        }
    }
}

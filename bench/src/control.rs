//! The control channel between the benchmark and its peer: text lines over the peer's stdin
//! and stdout. The data never goes through it; it only starts and ends phases.
//!
//! ```text
//! parent                         peer
//!                        ◄────── ready          (its end of the transport is open)
//! lat | thr      ──────►
//!                        ◄────── go
//!   … messages over the transport, the last one flagged END …
//!                        ◄────── done <msgs> <bytes> <gaps> <lost>
//! quit           ──────►
//! ```

use std::io::{self, BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout};

/// The parent's end of the control channel.
#[derive(Debug)]
pub struct Control {
    tx: ChildStdin,
    rx: BufReader<ChildStdout>,
    line: String,
}

impl Control {
    /// Takes the piped stdin and stdout of `child`.
    ///
    /// # Errors
    /// If they were not piped.
    pub fn new(child: &mut Child) -> io::Result<Self> {
        let tx = child.stdin.take().ok_or_else(|| io::Error::other("peer stdin not piped"))?;
        let rx = child.stdout.take().ok_or_else(|| io::Error::other("peer stdout not piped"))?;
        Ok(Self { tx, rx: BufReader::new(rx), line: String::new() })
    }

    /// Sends one line.
    ///
    /// # Errors
    /// If the peer is gone.
    pub fn send(&mut self, line: &str) -> io::Result<()> {
        writeln!(self.tx, "{line}")?;
        self.tx.flush()
    }

    /// Reads one line, which must start with `word`; returns the rest of it.
    ///
    /// # Errors
    /// If the peer is gone or said something else (its error, usually).
    pub fn expect(&mut self, word: &str) -> io::Result<String> {
        self.line.clear();
        if self.rx.read_line(&mut self.line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("peer exited before '{word}'")));
        }
        let line = self.line.trim_end();
        match line.strip_prefix(word) {
            Some(rest) => Ok(rest.trim().to_owned()),
            None => Err(io::Error::other(format!("peer said '{line}', expected '{word}'"))),
        }
    }
}

/// Writes one line to the parent (the peer's stdout).
///
/// # Errors
/// If the parent is gone.
pub fn reply(line: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

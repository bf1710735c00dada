//! The CLI's error: a message for one line on stderr and the exit code that goes with it.

use std::fmt;

/// Exit code for a run that finished but broke an invariant.
pub const EXIT_INVARIANT: i32 = 1;
/// Exit code for bad usage or bad input.
pub const EXIT_INPUT: i32 = 2;
/// Exit code for a failure of the machine or the pipeline itself (not the user's input).
pub const EXIT_FAILURE: i32 = 3;

/// A failed command.
#[derive(Debug)]
pub struct CliError {
    /// The process exit code.
    pub code: i32,
    /// One line, without "error:".
    pub message: String,
}

impl CliError {
    /// Bad usage or input (exit 2).
    #[must_use]
    pub fn input(message: impl Into<String>) -> Self {
        Self { code: EXIT_INPUT, message: one_line(message.into()) }
    }

    /// The run finished but broke an invariant (exit 1).
    #[must_use]
    pub fn invariant(message: impl Into<String>) -> Self {
        Self { code: EXIT_INVARIANT, message: one_line(message.into()) }
    }

    /// Something failed that is not the user's input (exit 3).
    #[must_use]
    pub fn internal(message: impl Into<String>) -> Self {
        Self { code: EXIT_FAILURE, message: one_line(message.into()) }
    }
}

fn one_line(s: String) -> String {
    if s.contains('\n') {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        s
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// Writes `text` to stdout. A closed pipe (`epochfuse inspect … | head`) is not an error
/// worth a panic or a message: the reader has what it wanted.
pub fn out(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
}

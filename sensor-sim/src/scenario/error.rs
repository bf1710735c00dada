//! Why a scenario could not be loaded.

use calib::ron_path::{error_field, PathStyle};
use std::fmt;

/// Why a scenario could not be loaded. Displays as one line naming the file, the field and,
/// for syntax errors, the line:column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScenarioError {
    /// The file could not be read.
    Io {
        /// The file.
        file: String,
        /// The OS error.
        message: String,
    },
    /// Refused at the door: not a regular file, or over the size cap. The message names
    /// the file.
    Refused {
        /// The one-line message.
        message: String,
    },
    /// RON syntax or type error.
    Syntax {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// The field being read at the error, as a path (`lidar.beams`, `faults[1].epoch`).
        field: Option<String>,
        /// ron's message.
        message: String,
    },
    /// Well-formed, but a value is out of range or inconsistent.
    Invalid {
        /// The file.
        file: String,
        /// The field, as a path.
        field: String,
        /// What is wrong.
        message: String,
    },
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { file, message } => write!(f, "{file}: cannot read scenario: {message}"),
            Self::Refused { message } => write!(f, "{message}"),
            Self::Syntax { file, line, col, field: Some(field), message } => {
                write!(f, "{file}:{line}:{col}: field `{field}`: {message}")
            }
            Self::Syntax { file, line, col, field: None, message } => {
                write!(f, "{file}:{line}:{col}: {message}")
            }
            Self::Invalid { file, field, message } => write!(f, "{file}: field `{field}`: {message}"),
        }
    }
}

impl std::error::Error for ScenarioError {}

impl ScenarioError {
    /// The error for a RON syntax or type error `e` in `text`, naming the field it is about.
    pub(super) fn syntax(text: &str, file: &str, e: &ron::error::SpannedError) -> Self {
        Self::Syntax {
            file: file.to_string(),
            line: e.position.line,
            col: e.position.col,
            field: error_field(text, e, PathStyle::Indexed),
            message: e.code.to_string(),
        }
    }
}

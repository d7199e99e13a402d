//! The one error type: a position and a sentence saying what was found and what was expected.

use crate::types::Location;

/// One problem in a config or policy file. `Display` is `file:line:col: message`, the form
/// editors and terminals turn into a link.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ConfigError {
    pub location: Location,
    pub message: String,
}

impl ConfigError {
    pub fn new(file: &str, pos: Pos, message: impl Into<String>) -> ConfigError {
        ConfigError {
            location: pos.at(file),
            message: message.into(),
        }
    }
}

/// A 1-based line and column inside one file.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    pub fn at(self, file: &str) -> Location {
        Location {
            file: file.to_string(),
            line: self.line,
            col: self.col,
        }
    }
}

/// Collects errors for one file while it is read, so that every error is reported at once.
pub(crate) struct Errors<'a> {
    pub file: &'a str,
    pub list: Vec<ConfigError>,
}

impl<'a> Errors<'a> {
    pub fn new(file: &'a str) -> Errors<'a> {
        Errors {
            file,
            list: Vec::new(),
        }
    }

    pub fn push(&mut self, pos: Pos, message: impl Into<String>) {
        self.list.push(ConfigError::new(self.file, pos, message));
    }

    pub fn location(&self, pos: Pos) -> Location {
        pos.at(self.file)
    }
}

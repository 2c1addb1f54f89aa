//! What is wrong with a scenario: one [`Problem`] per mistake, each printed on one line as
//! `file:line:column: path.to.key: what is wrong`.

use std::fmt;

/// One mistake in a scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file (or source name) the scenario came from; a command-line flag for overrides.
    pub file: String,
    /// 1-based line; 0 when the problem has no place in a file (a command-line override).
    pub line: u32,
    /// 1-based column; 0 with `line`.
    pub column: u32,
    /// Dotted key path with list indices, e.g. `load[1].over`; empty for the whole file.
    pub path: String,
    /// What is wrong, lowercase, one line.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in one scenario, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioErrors(pub Vec<Problem>);

impl ScenarioErrors {
    /// The problems as printed, one line each.
    pub fn lines(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

impl fmt::Display for ScenarioErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScenarioErrors {}

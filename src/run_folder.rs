//! Run-folder names: the ONE place a scenario's `name` becomes part of a path. It owns the rule
//! "a plain file name" (no `/`, `\`, `..`, nothing empty, no control characters) that scenario
//! validation also applies to `name`, and the folder `reports/<name>-<stamp>` built from it.
//! Its only I/O is [`create`].
//!
//! Why one function: the name was once built twice, and the copy in the `--workers` path did not
//! clean it, so a scenario named `../../x` wrote its folders outside `reports/` (issue 12).

use std::path::{Path, PathBuf};

/// The folder default run folders go under.
pub const REPORTS: &str = "reports";

/// Why a name cannot be a file name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty, or only blanks.
    #[error("must not be empty")]
    Empty,
    /// Holds a path separator, `..`, or is `.`: it could leave the reports folder.
    #[error("must be a plain file name: no `/`, `\\` or `..`")]
    NotPlain,
    /// Holds a control character (a newline, a tab, NUL...) or is longer than 200 bytes.
    #[error("must be one line of at most 200 bytes")]
    NotOneLine,
}

/// Checks that `name` (trimmed) is a plain file name.
///
/// # Errors
/// What is wrong with it, as one lowercase phrase.
pub fn check_plain(name: &str) -> Result<&str, NameError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().any(char::is_control) || name.len() > 200 {
        return Err(NameError::NotOneLine);
    }
    if name.contains(['/', '\\']) || name.contains("..") || name == "." {
        return Err(NameError::NotPlain);
    }
    Ok(name)
}

/// The run folder for a run of scenario `name` started at `stamp` (RFC 3339), under `root`:
/// `root/<name>-<YYYY-MM-DDTHH-MM-SS>`, the name's characters other than ASCII letters, digits
/// and `-` written as `_` (so the folder name is the same on every file system).
///
/// # Errors
/// When `name` is not a plain file name: nothing is built from it.
pub fn path(root: &Path, name: &str, stamp: &str) -> Result<PathBuf, NameError> {
    let name = check_plain(name)?;
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect();
    let stamp = stamp.replace([':', '.'], "-");
    let stamp = stamp.get(..19).unwrap_or(&stamp);
    Ok(root.join(format!("{safe}-{stamp}")))
}

/// The folder a run writes into: `given` as it is (the user chose it), or a new folder under
/// `reports/` named after the scenario and the current time.
///
/// # Errors
/// When `name` is not a plain file name.
pub fn choose(given: Option<&Path>, name: &str) -> Result<PathBuf, NameError> {
    match given {
        Some(d) => Ok(d.to_path_buf()),
        None => path(Path::new(REPORTS), name, &chatstorm_protocol::time::now_rfc3339()),
    }
}

/// Why the run folder could not be made.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    /// The scenario's name is not a plain file name.
    #[error("scenario name {name:?}: {reason}")]
    Name {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: NameError,
    },
    /// The folder could not be created.
    #[error("cannot create the run folder {}: {reason}", dir.display())]
    Create {
        /// The folder.
        dir: PathBuf,
        /// Why.
        reason: std::io::Error,
    },
}

/// [`choose`]s the run folder and creates it now, so a bad path fails before anything runs.
///
/// # Errors
/// [`FolderError`] when the name is refused or the folder cannot be created.
pub fn create(given: Option<&Path>, name: &str) -> Result<PathBuf, FolderError> {
    let dir = choose(given, name).map_err(|reason| FolderError::Name {
        name: name.to_owned(),
        reason,
    })?;
    std::fs::create_dir_all(&dir).map_err(|reason| FolderError::Create {
        dir: dir.clone(),
        reason,
    })?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Component;

    #[test]
    fn hostile_names_are_refused() {
        for bad in [
            "../../x", "..", ".", "a/b", "a\\b", "/etc", "x/..", "a..b", "", "  ", "a\nb", "a\0b",
        ] {
            assert!(check_plain(bad).is_err(), "{bad:?} must be refused");
            assert!(path(Path::new("reports"), bad, "2026-12-04T18:59:24.123Z").is_err());
        }
    }

    #[test]
    fn a_plain_name_stays_under_the_root() {
        let p = path(Path::new("reports"), "smoke test.v2", "2026-12-04T18:59:24.123Z").unwrap();
        assert_eq!(p, Path::new("reports/smoke_test_v2-2026-12-04T18-59-24"));
        assert!(p.components().all(|c| matches!(c, Component::Normal(_))));
        assert_eq!(p.parent(), Some(Path::new("reports")));
    }
}

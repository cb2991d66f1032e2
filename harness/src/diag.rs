//! Input errors that point at a place: `file:line:column: message`, with a
//! "did you mean" when a close name exists.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in an input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// A suggestion, if one is close.
    pub help: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => write!(f, "{}: {}", self.file.display(), self.message)?,
            _ => write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.column, self.message)?,
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Every problem found in one or more input files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// A source file being checked, to turn byte spans into lines and columns.
pub struct Source<'a> {
    /// Path shown in messages.
    pub path: &'a Path,
    /// The text.
    pub text: &'a str,
}

impl Source<'_> {
    /// A diagnostic at `span` (or at no place).
    pub fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> Diagnostic {
        let (line, column) = span.map_or((0, 0), |s| line_column(self.text, s.start));
        Diagnostic { file: self.path.to_path_buf(), line, column, message: message.into(), help: None }
    }

    /// A diagnostic from a TOML parse or schema error, with a suggestion for
    /// unknown keys and values.
    pub fn from_toml(&self, e: &toml::de::Error) -> Diagnostic {
        let message = e.message().trim().to_string();
        let help = suggest_from_serde(&message);
        Diagnostic { help, ..self.error(e.span(), message) }
    }
}

/// 1-based line and column of byte `offset`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The closest of `candidates` to `given`, if it is close enough to be a typo.
pub fn closest<'c>(given: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    candidates.into_iter().map(|c| (strsim::jaro_winkler(given, c), c)).filter(|(score, _)| *score > 0.8).max_by(|a, b| a.0.total_cmp(&b.0)).map(|(_, c)| c)
}

/// `did you mean` help for a name not among `candidates`.
pub fn did_you_mean<'c>(given: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<String> {
    closest(given, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// Reads serde's "unknown field `x`, expected one of `a`, `b`" and
/// "unknown variant ..." messages and suggests the closest expected name.
fn suggest_from_serde(message: &str) -> Option<String> {
    if !message.starts_with("unknown field") && !message.starts_with("unknown variant") {
        return None;
    }
    let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    let (given, expected) = quoted.split_first()?;
    did_you_mean(given, expected.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_suggestions() {
        assert_eq!(line_column("ab\ncd\nef", 4), (2, 2));
        assert_eq!(line_column("ab", 0), (1, 1));
        assert_eq!(suggest_from_serde("unknown field `qaunt`, expected one of `name`, `quant`, `prune`").as_deref(), Some("did you mean `quant`?"));
        assert_eq!(suggest_from_serde("unknown field `zzz`, expected `name` or `quant`"), None);
        assert_eq!(closest("resnet-8", ["ds-cnn", "resnet8"]), Some("resnet8"));
    }
}

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
            _ => write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )?,
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
        Diagnostic {
            file: self.path.to_path_buf(),
            line,
            column,
            message: message.into(),
            help: None,
        }
    }

    /// A diagnostic from a TOML parse or schema error, with a suggestion for
    /// unknown keys and values.
    pub fn from_toml(&self, e: &toml::de::Error) -> Diagnostic {
        let message = e.message().trim().to_string();
        let help = suggest_from_serde(&message);
        Diagnostic {
            help,
            ..self.error(e.span(), message)
        }
    }
}

/// The span of the value at `path` in a TOML text (keys, or indices into
/// arrays of tables: `["memory", "1", "length"]`), for checks that run
/// after deserializing and must still point at the place.
pub fn span_of(text: &str, path: &[&str]) -> Option<Range<usize>> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let mut span = root.span();
    let mut value = DeValue::Table(root.into_inner());
    for key in path {
        let next = match &value {
            DeValue::Table(t) => t
                .iter()
                .find(|(k, _)| k.get_ref().as_ref() == *key)
                .map(|(_, v)| v.clone())?,
            DeValue::Array(a) => a.get(key.parse::<usize>().ok()?)?.clone(),
            _ => return None,
        };
        span = next.span();
        value = next.into_inner();
    }
    Some(span)
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
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(given, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// `did you mean` help for a name not among `candidates`.
pub fn did_you_mean<'c>(
    given: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<String> {
    closest(given, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// The longest name bench accepts for a suite, model, variant, dataset or target.
pub const MAX_NAME: usize = 64;

/// Why `name` cannot name a suite, model, variant, dataset or target, if it
/// cannot. Names become directory and file names of a run (`models/<model>--<variant>.blob`),
/// parts of job ids (`model/variant/target`) and cells of Markdown tables, so
/// one rule makes them all safe: 1 to 64 ASCII letters, digits, `-`, `_` or
/// `.`, not starting with `.` or `-` (no `..`, no hidden files, no options).
pub fn name_problem(name: &str) -> Option<String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if name.is_empty() || name.len() > MAX_NAME || !first_ok || !name.chars().all(allowed) {
        return Some(format!(
            "{} is not a usable name: names are 1 to {MAX_NAME} letters, digits, '-', '_' or '.', starting with a letter, digit or '_' (they name files of the run)",
            serde_json::Value::from(name)
        ));
    }
    None
}

/// `name` made usable as a name (for defaults taken from file names): every
/// other character becomes `_`, and it is cut to [`MAX_NAME`].
pub fn usable_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(MAX_NAME)
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
        out.insert(0, '_');
        out.truncate(MAX_NAME);
    }
    out
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
        assert_eq!(
            suggest_from_serde("unknown field `qaunt`, expected one of `name`, `quant`, `prune`")
                .as_deref(),
            Some("did you mean `quant`?")
        );
        assert_eq!(
            suggest_from_serde("unknown field `zzz`, expected `name` or `quant`"),
            None
        );
        assert_eq!(closest("resnet-8", ["ds-cnn", "resnet8"]), Some("resnet8"));
    }

    #[test]
    fn names_are_safe_file_names() {
        for good in [
            "ds-cnn",
            "int8",
            "kws_ref_model",
            "mobilenet-v1-0.25",
            "_x",
            "a",
        ] {
            assert_eq!(name_problem(good), None, "{good}");
            assert_eq!(usable_name(good), good);
        }
        let long = "a".repeat(MAX_NAME + 1);
        for bad in [
            "",
            ".",
            "..",
            "../../esc-model",
            "/tmp/x",
            "a/b",
            "-rf",
            ".hidden",
            "two\nlines",
            "with space",
            "naïve",
            "a|b",
            long.as_str(),
        ] {
            let problem = name_problem(bad).unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert!(
                problem.ends_with("(they name files of the run)"),
                "{problem}"
            );
            assert_eq!(
                name_problem(&usable_name(bad)),
                None,
                "{bad:?} -> {:?}",
                usable_name(bad)
            );
        }
        assert_eq!(name_problem("a\nb").unwrap(), "\"a\\nb\" is not a usable name: names are 1 to 64 letters, digits, '-', '_' or '.', starting with a letter, digit or '_' (they name files of the run)");
        assert_eq!(usable_name("my model (v2)"), "my_model__v2_");
        assert_eq!(usable_name(".."), "_..");
    }
}

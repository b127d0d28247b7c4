//! `Check`: the helpers every validation step uses to read raw fields and report problems.
//!
//! Validators return plain values; when a field is missing or malformed, the problem is
//! reported and a placeholder (usually the default) stands in, so checking goes on. The
//! model is only built when nothing was reported, so placeholders never escape.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::diagnostic::{Pos, Sink};
use crate::raw::{DurationText, SizeText};
use crate::spanned::{Field, List, Spanned};
use crate::units;

pub(crate) struct Check<'a> {
    sink: &'a mut Sink,
    base_dir: &'a Path,
}

impl std::fmt::Debug for Check<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check")
            .field("base_dir", &self.base_dir)
            .finish()
    }
}

impl<'a> Check<'a> {
    pub(crate) fn new(sink: &'a mut Sink, base_dir: &'a Path) -> Self {
        Check { sink, base_dir }
    }

    /// Nothing was reported (so far, by any pass).
    pub(crate) fn is_clean(&self) -> bool {
        self.sink.is_empty()
    }

    pub(crate) fn at(&mut self, pos: Pos, path: &str, message: impl Into<String>) {
        self.sink.push(pos, path, message);
    }

    /// A problem with this value.
    pub(crate) fn error<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        self.sink.push(at.pos, &at.path, message);
    }

    /// Reports `parent` missing its required field `name`; true if present. (A present
    /// but malformed value was already reported.)
    pub(crate) fn require<P, T>(
        &mut self,
        parent: &Spanned<P>,
        field: &Field<T>,
        name: &str,
    ) -> bool {
        if field.is_none() {
            self.at(parent.pos, &parent.path, format!("missing field {name:?}"));
        }
        field.is_some()
    }

    /// A present, well-formed field parsed by `parse`; problems are reported at the field.
    pub(crate) fn parse<T, U>(
        &mut self,
        field: &Field<T>,
        parse: impl FnOnce(&T) -> Result<U, String>,
    ) -> Option<U> {
        let spanned = field.as_ref()?;
        match parse(spanned.get()?) {
            Ok(v) => Some(v),
            Err(message) => {
                self.error(spanned, message);
                None
            }
        }
    }

    /// A required string: present and not blank.
    pub(crate) fn required_text<P>(
        &mut self,
        parent: &Spanned<P>,
        field: &Field<String>,
        name: &str,
    ) -> String {
        if !self.require(parent, field, name) {
            return String::new();
        }
        self.parse(field, |s| non_empty(s, name))
            .unwrap_or_default()
    }

    /// An optional string: not blank when present.
    pub(crate) fn text(&mut self, field: &Field<String>, what: &str) -> Option<String> {
        self.parse(field, |s| non_empty(s, what))
    }

    pub(crate) fn duration(&mut self, field: &Field<DurationText>, default: Duration) -> Duration {
        self.parse(field, |d| units::parse_duration(&d.0))
            .unwrap_or(default)
    }

    /// A duration that must be more than zero.
    pub(crate) fn positive_duration(
        &mut self,
        field: &Field<DurationText>,
        default: Duration,
    ) -> Duration {
        self.parse(field, |d| {
            let v = units::parse_duration(&d.0)?;
            if v.is_zero() {
                Err(format!(
                    "{:?} is not allowed: the duration must be more than 0",
                    d.0
                ))
            } else {
                Ok(v)
            }
        })
        .unwrap_or(default)
    }

    /// A size that must be more than zero.
    pub(crate) fn size(&mut self, field: &Field<SizeText>, default: u64) -> u64 {
        self.parse(field, |s| {
            let v = units::parse_size(&s.0)?;
            if v == 0 {
                Err(format!(
                    "{:?} is not allowed: the size must be more than 0",
                    s.0
                ))
            } else {
                Ok(v)
            }
        })
        .unwrap_or(default)
    }

    /// An integer from `min` to `max`.
    pub(crate) fn int_in(&mut self, field: &Field<u32>, min: u32, max: u32, default: u32) -> u32 {
        self.parse(field, |n| {
            if (min..=max).contains(n) {
                Ok(*n)
            } else if max == u32::MAX {
                Err(format!("{n} is too small (expected at least {min})"))
            } else {
                Err(format!("{n} is out of range (expected {min} to {max})"))
            }
        })
        .unwrap_or(default)
    }

    /// A number from `min` to `max` (NaN is refused).
    pub(crate) fn number_in(
        &mut self,
        field: &Field<f64>,
        min: f64,
        max: f64,
        default: f64,
    ) -> f64 {
        self.parse(field, |n| {
            if (min..=max).contains(n) {
                Ok(*n)
            } else {
                Err(format!("{n} is out of range (expected {min} to {max})"))
            }
        })
        .unwrap_or(default)
    }

    /// A file path; relative paths are resolved against the config file's directory.
    pub(crate) fn path(&mut self, field: &Field<String>) -> Option<PathBuf> {
        let base = self.base_dir;
        self.parse(field, |p| {
            if p.trim().is_empty() {
                Err("expected a file path, got an empty string".to_string())
            } else {
                Ok(base.join(p))
            }
        })
    }

    /// A required file path.
    pub(crate) fn required_path<P>(
        &mut self,
        parent: &Spanned<P>,
        field: &Field<String>,
        name: &str,
    ) -> PathBuf {
        if !self.require(parent, field, name) {
            return PathBuf::new();
        }
        self.path(field).unwrap_or_default()
    }

    /// Each well-formed item of a list field, checked by `item` (items it rejects are left out).
    pub(crate) fn list<T, U>(
        &mut self,
        field: &List<T>,
        item: impl FnMut(&mut Check<'a>, &Spanned<T>, &T) -> Option<U>,
    ) -> Vec<U> {
        self.items(field.as_ref(), item)
    }

    /// Like `list`, for a list that is not an optional field.
    pub(crate) fn items<T, U>(
        &mut self,
        list: Option<&Spanned<Vec<Spanned<T>>>>,
        mut item: impl FnMut(&mut Check<'a>, &Spanned<T>, &T) -> Option<U>,
    ) -> Vec<U> {
        let Some(items) = list.and_then(Spanned::get) else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|spanned| {
                let value = spanned.get()?;
                item(self, spanned, value)
            })
            .collect()
    }

    /// A present optional section, checked by `f`.
    pub(crate) fn optional<R, T>(
        &mut self,
        field: Option<&Spanned<R>>,
        f: impl FnOnce(&mut Check<'a>, &Spanned<R>) -> T,
    ) -> Option<T> {
        let spanned = field?;
        spanned.get()?;
        Some(f(self, spanned))
    }

    /// The names of a list of named things; a blank or repeated name is reported. `None`
    /// when some item or name was malformed, so the list of names is not known.
    pub(crate) fn unique_names<T>(
        &mut self,
        list: Option<&Spanned<Vec<Spanned<T>>>>,
        kind: &str,
        name_of: impl Fn(&T) -> &Field<String>,
    ) -> Option<Vec<String>> {
        let Some(list) = list else {
            return Some(Vec::new());
        };
        let mut complete = list.get().is_some();
        let mut seen: Vec<(String, Pos)> = Vec::new();
        for item in list.get().into_iter().flatten() {
            let Some(field) = item.get().map(&name_of).and_then(Option::as_ref) else {
                complete = false;
                continue;
            };
            let Some(name) = field.get() else {
                complete = false;
                continue;
            };
            if let Some((_, first)) = seen.iter().find(|(n, _)| n == name) {
                let line = first.line;
                self.error(
                    field,
                    format!("duplicate {kind} name {name:?} (first defined at line {line})"),
                );
            } else if !name.trim().is_empty() {
                seen.push((name.clone(), field.pos));
            }
        }
        complete.then(|| seen.into_iter().map(|(n, _)| n).collect())
    }

    /// Reports when not exactly one of `present` (field name, where it is) is given.
    pub(crate) fn exactly_one<P>(
        &mut self,
        parent: &Spanned<P>,
        present: &[(&str, Option<Pos>)],
    ) -> bool {
        let given: Vec<_> = present
            .iter()
            .filter_map(|(n, p)| p.map(|p| (*n, p)))
            .collect();
        let names: Vec<_> = present.iter().map(|(n, _)| format!("{n:?}")).collect();
        match given.as_slice() {
            [_] => true,
            [] => {
                self.at(
                    parent.pos,
                    &parent.path,
                    format!("needs exactly one of {}, got none", names.join(", ")),
                );
                false
            }
            [(first, _), rest @ ..] => {
                for (name, pos) in rest {
                    let path = crate::path::field(&parent.path, name);
                    self.at(
                        *pos,
                        &path,
                        format!(
                            "cannot be used together with {first:?} (give exactly one of {})",
                            names.join(", ")
                        ),
                    );
                }
                false
            }
        }
    }
}

/// Where a field is, if it is present (for `exactly_one`).
pub(crate) fn pos_of<T>(field: &Field<T>) -> Option<Pos> {
    field.as_ref().map(|s| s.pos)
}

fn non_empty(s: &str, what: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err(format!("{what} cannot be empty"))
    } else {
        Ok(s.to_string())
    }
}

//! A strict parser for the Prometheus text exposition format (version 0.0.4).
//!
//! Strict where a lenient scraper would shrug: every sample belongs to a family declared
//! by `# TYPE` before it, families are contiguous and declared once, no series appears
//! twice, label values use only the format's escapes, and each histogram has cumulative
//! buckets ending in `+Inf` that equals its `_count`.

use std::collections::{BTreeMap, BTreeSet};

/// Label names to values.
pub type Labels = BTreeMap<String, String>;

/// The `# TYPE` of a family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

impl Kind {
    fn parse(text: &str) -> Option<Kind> {
        Some(match text {
            "counter" => Kind::Counter,
            "gauge" => Kind::Gauge,
            "histogram" => Kind::Histogram,
            "summary" => Kind::Summary,
            "untyped" => Kind::Untyped,
            _ => return None,
        })
    }

    /// The sample names a family called `family` of this kind may hold.
    fn owns(self, family: &str, sample: &str) -> bool {
        let suffixes: &[&str] = match self {
            Kind::Histogram => &["_bucket", "_sum", "_count"],
            Kind::Summary => &["", "_sum", "_count"],
            _ => &[""],
        };
        suffixes
            .iter()
            .any(|s| sample.strip_suffix(s) == Some(family))
    }
}

/// One line of a sample: `name{labels} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Labels,
    pub value: f64,
}

/// A `# TYPE`-declared family and its samples.
#[derive(Clone, Debug)]
pub struct Family {
    pub name: String,
    pub kind: Kind,
    pub help: Option<String>,
    pub samples: Vec<Sample>,
}

/// Parses a whole exposition.
///
/// # Errors
/// The first problem, as `line N: what is wrong: the line`.
pub fn parse(text: &str) -> Result<Vec<Family>, String> {
    let mut families: Vec<Family> = Vec::new();
    let mut declared = BTreeSet::new();
    let mut helps: BTreeMap<String, String> = BTreeMap::new();
    let mut series = BTreeSet::new();
    for (index, line) in text.lines().enumerate() {
        let fail = |what: &str| format!("line {}: {what}: {line:?}", index + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            check_metric_name(name).map_err(|e| fail(&e))?;
            if helps.insert(name.to_owned(), unescape_help(help)).is_some() {
                return Err(fail("a second HELP for this family"));
            }
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| fail("TYPE without a type"))?;
            check_metric_name(name).map_err(|e| fail(&e))?;
            let kind = Kind::parse(kind).ok_or_else(|| fail("unknown type"))?;
            if !declared.insert(name.to_owned()) {
                return Err(fail("a second TYPE for this family"));
            }
            families.push(Family {
                name: name.to_owned(),
                kind,
                help: None,
                samples: Vec::new(),
            });
        } else if line.starts_with('#') {
            continue;
        } else {
            let sample = parse_sample(line).map_err(|e| fail(&e))?;
            let family = families
                .last_mut()
                .filter(|f| f.kind.owns(&f.name, &sample.name))
                .ok_or_else(|| fail("a sample outside the family declared last by # TYPE"))?;
            if !series.insert(series_id(&sample.name, &sample.labels)) {
                return Err(fail("a series repeated"));
            }
            family.samples.push(sample);
        }
    }
    for family in &mut families {
        family.help = helps.remove(&family.name);
        if family.kind == Kind::Histogram {
            check_histogram(family)?;
        }
    }
    if let Some(name) = helps.keys().next() {
        return Err(format!("HELP for {name}, which has no TYPE"));
    }
    Ok(families)
}

/// `name{a="1",b="2"}` with labels in name order: a series' identity.
pub fn series_id(name: &str, labels: &Labels) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

fn check_metric_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(format!("invalid metric name {name:?}"))
    }
}

fn check_label_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(format!("invalid label name {name:?}"))
    }
}

fn unescape_help(text: &str) -> String {
    text.replace("\\n", "\n").replace("\\\\", "\\")
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    check_metric_name(name)?;
    let (labels, rest) = if line[name_end..].starts_with('{') {
        parse_labels(&line[name_end + 1..])?
    } else {
        (Labels::new(), &line[name_end..])
    };
    let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let mut parts = rest.split(' ');
    let value = parse_value(parts.next().unwrap_or(""))?;
    if let Some(timestamp) = parts.next() {
        timestamp
            .parse::<i64>()
            .map_err(|_| format!("invalid timestamp {timestamp:?}"))?;
    }
    if parts.next().is_some() {
        return Err("text after the timestamp".to_owned());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Parses `a="1",b="2"}` and returns the labels and what follows the `}`.
fn parse_labels(mut text: &str) -> Result<(Labels, &str), String> {
    let mut labels = Labels::new();
    loop {
        if let Some(rest) = text.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let (name, rest) = text.split_once("=\"").ok_or("a label without =\"")?;
        check_label_name(name)?;
        let (value, rest) = parse_label_value(rest)?;
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label {name:?} given twice"));
        }
        text = rest.strip_prefix(',').unwrap_or(rest);
        if !rest.starts_with([',', '}']) {
            return Err("a label value not followed by , or }".to_owned());
        }
    }
}

/// Reads an escaped label value up to its closing quote; returns it and what follows.
fn parse_label_value(text: &str) -> Result<(String, &str), String> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &text[at + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => value.push('\\'),
                Some((_, '"')) => value.push('"'),
                Some((_, 'n')) => value.push('\n'),
                other => return Err(format!("invalid escape \\{:?}", other.map(|(_, c)| c))),
            },
            '\n' => return Err("a raw newline in a label value".to_owned()),
            c => value.push(c),
        }
    }
    Err("an unterminated label value".to_owned())
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("invalid value {text:?}")),
    }
}

/// Buckets cumulative and ordered by `le`, ending in `+Inf` = `_count`, with a `_sum`.
fn check_histogram(family: &Family) -> Result<(), String> {
    let mut groups: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut counts = BTreeMap::new();
    let mut sums = BTreeSet::new();
    for sample in &family.samples {
        let mut labels = sample.labels.clone();
        let le = labels.remove("le");
        let id = series_id(&family.name, &labels);
        let fail = |what: &str| format!("histogram {id}: {what}");
        match (sample.name.strip_prefix(&family.name), le) {
            (Some("_bucket"), Some(le)) => {
                let le = parse_value(&le).map_err(|e| fail(&e))?;
                groups.entry(id).or_default().push((le, sample.value));
            }
            (Some("_bucket"), None) => return Err(fail("a bucket without le")),
            (_, Some(_)) => return Err(fail("le outside a bucket")),
            (Some("_count"), None) => {
                counts.insert(id, sample.value);
            }
            _ => {
                sums.insert(id);
            }
        }
    }
    for (id, buckets) in &groups {
        let fail = |what: &str| format!("histogram {id}: {what}");
        if buckets.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(fail("buckets not in increasing le order"));
        }
        if buckets.windows(2).any(|w| w[0].1 > w[1].1) {
            return Err(fail("bucket counts not cumulative"));
        }
        let (last_le, last_count) = buckets[buckets.len() - 1];
        if last_le != f64::INFINITY {
            return Err(fail("no +Inf bucket"));
        }
        if counts.get(id) != Some(&last_count) {
            return Err(fail("_count differs from the +Inf bucket"));
        }
        if !sums.contains(id) {
            return Err(fail("no _sum"));
        }
    }
    if let Some(id) = counts.keys().find(|id| !groups.contains_key(*id)) {
        return Err(format!("histogram {id}: a _count without buckets"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
# HELP requests_total Requests.\\nTwo lines.
# TYPE requests_total counter
requests_total{route=\"a \\\"b\\\"\",code=\"2xx\"} 3
requests_total{route=\"\",code=\"4xx\"} 1 1700000000000
# TYPE latency_seconds histogram
latency_seconds_bucket{le=\"0.1\"} 1
latency_seconds_bucket{le=\"+Inf\"} 2
latency_seconds_sum 0.3
latency_seconds_count 2
# TYPE up gauge
up 1
";

    #[test]
    fn a_well_formed_exposition_parses_with_escapes_and_help() {
        let families = parse(GOOD).unwrap();
        assert_eq!(families.len(), 3);
        let requests = &families[0];
        assert_eq!(requests.kind, Kind::Counter);
        assert_eq!(requests.help.as_deref(), Some("Requests.\nTwo lines."));
        assert_eq!(requests.samples[0].labels["route"], "a \"b\"");
        assert_eq!(requests.samples[1].value, 1.0);
        assert_eq!(families[1].samples.len(), 4);
        assert_eq!(families[2].samples[0].labels, Labels::new());
    }

    #[test]
    fn malformed_expositions_are_refused_with_the_line() {
        let cases = [
            ("x 1\n", "outside the family"),
            ("# TYPE x counter\n# TYPE x counter\n", "second TYPE"),
            ("# TYPE x counter\nx 1\nx 2\n", "repeated"),
            ("# TYPE x counter\ny 1\n", "outside the family"),
            ("# TYPE x counter\nx{a=\"1} 1\n", "unterminated"),
            ("# TYPE x counter\nx{a=\"\\t\"} 1\n", "invalid escape"),
            ("# TYPE x counter\nx{1a=\"1\"} 1\n", "invalid label name"),
            ("# TYPE x counter\nx one\n", "invalid value"),
            ("# TYPE x counter\nx{a=\"1\"b=\"2\"} 1\n", "not followed by"),
            ("# TYPE x summer\n", "unknown type"),
            ("# HELP x a\n", "has no TYPE"),
            (
                "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
                "not cumulative",
            ),
            (
                "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n",
                "_count differs",
            ),
            (
                "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
                "no +Inf",
            ),
        ];
        for (text, expected) in cases {
            let error = parse(text).expect_err(text);
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }
}

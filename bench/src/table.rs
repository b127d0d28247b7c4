//! Renders rows as one compact Markdown table (aligned, so it reads in a terminal too):
//! each target's median with its spread, then the ratio columns.

use crate::report::{RATIO_COLUMNS, Row};
use crate::stats::Summary;
use crate::targets::Target;

/// A number with precision fitting its size: `123,457`, `812`, `42.5`, `0.731`.
pub fn format_number(v: f64) -> String {
    let a = v.abs();
    if a >= 10_000.0 {
        group_thousands(v.round() as i64)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn group_thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// `median ±spread%`, the spread left out when there was one round or it rounds to 0.
pub fn format_summary(s: &Summary) -> String {
    let spread = s.spread_percent();
    if s.samples.len() < 2 || spread < 0.05 {
        format_number(s.median)
    } else {
        format!("{} ±{:.1}%", format_number(s.median), spread)
    }
}

pub fn format_ratio(r: Option<f64>) -> String {
    match r {
        Some(r) => format!("{r:.2}x"),
        None => "—".to_owned(),
    }
}

/// The target columns: the four always, the optional meshwork variants (a baseline
/// build, observability on) when some row has them.
pub fn target_columns(rows: &[Row]) -> Vec<Target> {
    let mut targets = Target::ALL.to_vec();
    for extra in [
        Target::MeshworkBase,
        Target::MeshworkObserved,
        Target::MeshworkObservedSampled,
    ] {
        if rows.iter().any(|r| r.values.contains_key(&extra)) {
            targets.push(extra);
        }
    }
    targets
}

/// The ratio columns for `targets`: [`RATIO_COLUMNS`], plus meshwork over its baseline
/// and observability on over off.
pub fn ratio_columns(targets: &[Target]) -> Vec<(Target, Target)> {
    let mut columns = RATIO_COLUMNS.to_vec();
    if targets.contains(&Target::MeshworkBase) {
        columns.push((Target::Meshwork, Target::MeshworkBase));
    }
    for observed in [Target::MeshworkObserved, Target::MeshworkObservedSampled] {
        if targets.contains(&observed) {
            columns.push((observed, Target::Meshwork));
        }
    }
    columns
}

/// The header cells of the table.
pub fn header(targets: &[Target]) -> Vec<String> {
    let mut cells: Vec<String> = vec!["scenario".into(), "metric".into()];
    cells.extend(targets.iter().map(|t| t.name().to_owned()));
    cells.extend(
        ratio_columns(targets)
            .iter()
            .map(|(a, b)| format!("{}/{}", short(*a), short(*b))),
    );
    cells
}

/// Column-header abbreviations that keep the table narrow.
fn short(t: Target) -> &'static str {
    match t {
        Target::Direct => "direct",
        Target::Meshwork => "mw",
        Target::Nginx => "nginx",
        Target::Haproxy => "hap",
        Target::Envoy => "envoy",
        Target::MeshworkBase => "base",
        Target::MeshworkObserved => "mw-obs",
        Target::MeshworkObservedSampled => "mw-obs-0.01",
    }
}

/// The cells of one row.
pub fn cells(row: &Row, targets: &[Target]) -> Vec<String> {
    let mut cells = vec![row.scenario.clone(), row.metric.clone()];
    cells.extend(targets.iter().map(|t| match row.values.get(t) {
        Some(s) => format_summary(s),
        None => "—".to_owned(),
    }));
    cells.extend(
        ratio_columns(targets)
            .iter()
            .map(|(a, b)| format_ratio(row.ratio(*a, *b))),
    );
    cells
}

/// The whole table as aligned Markdown.
pub fn render(rows: &[Row]) -> String {
    let targets = target_columns(rows);
    let mut lines: Vec<Vec<String>> = vec![header(&targets)];
    lines.extend(rows.iter().map(|r| cells(r, &targets)));
    let columns = lines[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        out.push('|');
        for (c, cell) in line.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            // Text columns left-aligned, figures right-aligned.
            if c < 2 {
                out.push_str(&format!(" {cell}{} |", " ".repeat(pad)));
            } else {
                out.push_str(&format!(" {}{cell} |", " ".repeat(pad)));
            }
        }
        out.push('\n');
        if i == 0 {
            out.push('|');
            for (c, w) in widths.iter().enumerate() {
                let dashes = "-".repeat(*w);
                if c < 2 {
                    out.push_str(&format!(" {dashes} |"));
                } else {
                    out.push_str(&format!(" {}: |", &dashes[1..]));
                }
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Better;

    #[test]
    fn numbers_get_precision_by_size() {
        assert_eq!(format_number(123_456.7), "123,457");
        assert_eq!(format_number(1_000_000.0), "1,000,000");
        assert_eq!(format_number(812.4), "812");
        assert_eq!(format_number(42.54), "42.5");
        assert_eq!(format_number(4.56789), "4.57");
        assert_eq!(format_number(0.7314), "0.731");
        assert_eq!(format_number(-0.05), "-0.050");
    }

    #[test]
    fn summaries_show_the_spread_only_when_there_is_one() {
        let one = Summary::of(&[100.0]).unwrap();
        assert_eq!(format_summary(&one), "100");
        let three = Summary::of(&[95.0, 100.0, 105.0]).unwrap();
        assert_eq!(format_summary(&three), "100 ±5.0%");
    }

    #[test]
    fn table_has_values_ratios_and_dashes_for_missing_targets() {
        let row = Row::new("h1-max", "req/s", Better::Higher)
            .with(Target::Direct, &[100_000.0])
            .with(Target::Meshwork, &[90_000.0])
            .with(Target::Nginx, &[75_000.0]);
        let table = render(&[row]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].starts_with("| scenario | metric |"), "{table}");
        assert!(lines[0].contains("mw/direct"), "{table}");
        assert!(lines[1].contains("---:"), "{table}");
        let cells: Vec<&str> = lines[2].split('|').map(str::trim).collect();
        assert_eq!(
            cells,
            [
                "", "h1-max", "req/s", "100,000", "90,000", "75,000", "—", "—", "0.90x", "0.75x",
                "—", "—", "1.20x", "—", "—", ""
            ]
        );
        // Aligned: every line has the same width.
        assert!(
            lines
                .iter()
                .all(|l| l.chars().count() == lines[0].chars().count())
        );
    }

    #[test]
    fn a_baseline_build_gets_its_column_and_a_ratio() {
        let row = Row::new("h1-max", "req/s", Better::Higher)
            .with(Target::Meshwork, &[110.0])
            .with(Target::MeshworkBase, &[100.0]);
        let table = render(&[row]);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].contains("| meshwork-base |"), "{table}");
        assert!(lines[0].contains("mw/base"), "{table}");
        assert!(lines[2].trim_end().ends_with("1.10x |"), "{table}");
        // Without a baseline, no such column.
        let plain = render(&[Row::new("x", "y", Better::Higher).with(Target::Direct, &[1.0])]);
        assert!(!plain.contains("base"), "{plain}");
        assert!(
            lines
                .iter()
                .all(|l| l.chars().count() == lines[0].chars().count())
        );
    }
}

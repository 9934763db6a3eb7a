//! Exports written as warehouses write them: the fixture's tables, dealt into parts, as CSV
//! text of any dialect.

use super::manifest_dir;

/// One table of a fixture: its header and rows.
#[derive(Clone)]
pub struct Table {
    pub name: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

pub fn fixture_csv_tables() -> Vec<Table> {
    let dir = manifest_dir().join("fixtures/export");
    let mut tables = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_path(&path)
            .unwrap();
        let mut records = reader.records().map(|r| {
            r.unwrap()
                .iter()
                .map(|c| c.trim_start_matches('\u{feff}').to_string())
                .collect::<Vec<_>>()
        });
        let header = records.next().unwrap();
        tables.push(Table {
            name,
            header,
            rows: records.collect(),
        });
    }
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    tables
}

/// Deals `rows` into `parts` parts after a fixed shuffle (parts are not in account order).
pub fn deal<T: Clone>(rows: &[T], parts: usize) -> Vec<Vec<T>> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    // A fixed permutation: multiply by a unit modulo the length.
    let n = rows.len().max(1);
    let step = (1..n)
        .rev()
        .find(|s| gcd(*s, n) == 1 && *s > n / 3)
        .unwrap_or(1);
    order.sort_by_key(|i| (i * step) % n);
    let mut out = vec![Vec::new(); parts];
    for (k, i) in order.into_iter().enumerate() {
        out[k % parts].push(rows[i].clone());
    }
    out
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// CSV text of `rows`: `delimiter`, every field quoted when `quote_all`, `null` for empty
/// cells. Inside quotes, a quote is doubled; with `backslash`, a backslash goes before each
/// quote, backslash, delimiter and line break instead (Redshift's `ADDQUOTES ESCAPE`).
pub fn csv_text(
    header: Option<&[String]>,
    rows: &[Vec<String>],
    delimiter: u8,
    quote_all: bool,
    backslash: bool,
    null: Option<&str>,
) -> String {
    let field = |cell: &str| -> String {
        if cell.is_empty() {
            if let Some(null) = null {
                return null.to_string();
            }
        }
        let needs = quote_all
            || cell.contains([delimiter as char, '"', '\n', '\r'])
            || cell.starts_with(' ');
        if !needs {
            return cell.to_string();
        }
        let inner = if backslash {
            let mut escaped = String::with_capacity(cell.len());
            for c in cell.chars() {
                if matches!(c, '\\' | '"' | '\n' | '\r') || c == delimiter as char {
                    escaped.push('\\');
                }
                escaped.push(c);
            }
            escaped
        } else {
            cell.replace('"', "\"\"")
        };
        format!("\"{inner}\"")
    };
    let mut out = String::new();
    for row in header.into_iter().chain(rows.iter().map(Vec::as_slice)) {
        let cells: Vec<String> = row.iter().map(|c| field(c)).collect();
        out.push_str(&cells.join(&(delimiter as char).to_string()));
        out.push('\n');
    }
    out
}

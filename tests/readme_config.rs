//! The README's config snippets work, on the binary. Every ```toml block of its "Input
//! contract" and "From your warehouse" sections is written, as it stands, to
//! `intercom-push.toml` next to an export laid out the way that section says (the warehouse's
//! file names, dialect and NULLs, with a value holding every character a dialect must quote
//! or escape); load + transform + `plan --json --all` must give exactly the plan of the same
//! rows as one plain CSV file per table. A block no case claims fails the test, so a new
//! snippet cannot go unproven. The layouts the section says need no config are loaded
//! without one.

mod common;

use std::path::{Path, PathBuf};

use common::layouts::{csv_text, deal, fixture_csv_tables, Table};
use common::{manifest_dir, Workspace};

/// Each ```toml block between `## Input contract` and the end of `## From your warehouse`,
/// with the title of the `##`/`###` heading it is under.
fn readme_toml_blocks() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(manifest_dir().join("README.md")).unwrap();
    let start = readme
        .find("\n## Input contract")
        .expect("the README has an `## Input contract` section");
    let warehouse = readme
        .find("\n## From your warehouse")
        .expect("the README has a `## From your warehouse` section");
    assert!(
        start < warehouse,
        "From your warehouse comes after Input contract"
    );
    let end = readme[warehouse + 1..]
        .find("\n## ")
        .map_or(readme.len(), |i| warehouse + 1 + i);
    let mut heading = String::new();
    let mut blocks = Vec::new();
    let mut lines = readme[start..end].lines();
    while let Some(line) = lines.next() {
        if let Some(title) = line
            .strip_prefix("## ")
            .or_else(|| line.strip_prefix("### "))
        {
            heading = title.trim().to_string();
        } else if line.trim() == "```toml" {
            let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            blocks.push((heading.clone(), block.join("\n") + "\n"));
        }
    }
    blocks
}

/// The fixture export plus an account whose name and notes hold what a dialect must quote or
/// escape: `,`, `|`, a tab, quotes, backslashes (one at the end) and a line break.
fn tables_with_awkward_values() -> Vec<Table> {
    let mut tables = fixture_csv_tables();
    let accounts = tables.iter_mut().find(|t| t.name == "accounts").unwrap();
    let row = accounts
        .header
        .iter()
        .map(|column| {
            match column.as_str() {
                "id" => "acc_900",
                "externalId" => "quirk",
                "name" => "Quirk, \"Q\" | Co",
                "mrr" => "42",
                "notes" => "line one\nline \"two\"\t| C:\\temp\\",
                _ => "",
            }
            .to_string()
        })
        .collect();
    accounts.rows.push(row);
    tables
}

/// `table` reduced to `columns`, in that order and named as there (the table's columns are
/// matched camelCase = snake_case, as the loader does).
fn project(table: &Table, columns: &[String]) -> Table {
    let normalize = |name: &str| name.replace('_', "").to_lowercase();
    let index: Vec<usize> = columns
        .iter()
        .map(|column| {
            table
                .header
                .iter()
                .position(|h| normalize(h) == normalize(column))
                .unwrap_or_else(|| panic!("`{}` has no column `{column}`", table.name))
        })
        .collect();
    Table {
        name: table.name.clone(),
        header: columns.to_vec(),
        rows: table
            .rows
            .iter()
            .map(|row| index.iter().map(|&i| row[i].clone()).collect())
            .collect(),
    }
}

/// load + transform + `plan --json --all` of `ws`'s export, with `ws`'s
/// `intercom-push.toml` (the default config) when there is one.
fn plan(ws: &Workspace) -> String {
    ws.load().ok();
    ws.transform(&[]).ok();
    let plan = ws.run(&["plan", "--json", "--all"]).ok().stdout.clone();
    assert!(plan.contains("\"company_id\":\"acme\""), "{plan}");
    plan
}

/// The plan of `tables` as one RFC 4180 CSV file each, with a header row, and no config.
fn reference_plan(tables: &[Table]) -> String {
    let ws = Workspace::new();
    for table in tables {
        let text = csv_text(Some(&table.header), &table.rows, b',', false, false, None);
        ws.write(&format!("{}.csv", table.name), text);
    }
    plan(&ws)
}

/// Writes `contents` at `relative` (which may hold folders) in the export directory.
fn write_at(ws: &Workspace, relative: &str, contents: String) {
    let path = ws.export().join(relative);
    let name = path.file_name().unwrap().to_str().unwrap().to_string();
    ws.write_in(path.parent().unwrap(), &name, contents);
}

/// The `[tables.<table>]` (or `[tables] <table> = {…}`) settings of a config block.
fn table_settings<'c>(config: &'c toml::Table, table: &str) -> &'c toml::Table {
    config
        .get("tables")
        .and_then(|t| t.get(table))
        .and_then(toml::Value::as_table)
        .unwrap_or_else(|| panic!("the config names no settings for `{table}`:\n{config}"))
}

/// "Input contract": accounts as gzip parts matching the block's `path` glob (`*` → part
/// number), users as a tab-separated `users.tsv` writing NULL as `\N`, the rest plain CSV.
fn input_contract_example(ws: &Workspace, config: &toml::Table, tables: &[Table]) -> Vec<Table> {
    let pattern = table_settings(config, "accounts")["path"].as_str().unwrap();
    for table in tables {
        let header = Some(table.header.as_slice());
        match table.name.as_str() {
            "accounts" => {
                for (i, rows) in deal(&table.rows, 3).iter().enumerate() {
                    let text = csv_text(header, rows, b',', false, false, None);
                    write_at(ws, &pattern.replace('*', &i.to_string()), text);
                }
            }
            "users" => {
                let text = csv_text(header, &table.rows, b'\t', false, false, Some("\\N"));
                ws.write("users.tsv", text);
            }
            name => {
                let text = csv_text(header, &table.rows, b',', false, false, None);
                ws.write(&format!("{name}.csv"), text);
            }
        }
    }
    tables.to_vec()
}

/// Snowflake `COPY INTO @stage/<table>/` with its defaults but for the quoting: gzip parts
/// `<table>/data_0_N_0.csv.gz`, no header row (the columns the block lists, in its order),
/// values with a comma, quote or line break in quotes, NULL as `\N`.
fn snowflake_headerless(ws: &Workspace, config: &toml::Table, tables: &[Table]) -> Vec<Table> {
    let mut unloaded = Vec::new();
    for table in tables {
        let columns: Vec<String> = table_settings(config, &table.name)["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        let table = project(table, &columns);
        for (i, rows) in deal(&table.rows, 2).iter().enumerate() {
            let text = csv_text(None, rows, b',', false, false, Some("\\N"));
            write_at(ws, &format!("{}/data_0_{i}_0.csv.gz", table.name), text);
        }
        unloaded.push(table);
    }
    unloaded
}

/// Redshift `UNLOAD … HEADER DELIMITER '|' ADDQUOTES ESCAPE GZIP` to the table's name: parts
/// `<table>000N_part_00.gz` in the export directory, a header row, `|`, every value quoted,
/// backslash escapes, NULL as an empty value.
fn redshift_text(ws: &Workspace, _config: &toml::Table, tables: &[Table]) -> Vec<Table> {
    for table in tables {
        for (i, rows) in deal(&table.rows, 2).iter().enumerate() {
            let text = csv_text(Some(&table.header), rows, b'|', true, true, None);
            ws.write(&format!("{}000{i}_part_00.gz", table.name), text);
        }
    }
    tables.to_vec()
}

type Layout = fn(&Workspace, &toml::Table, &[Table]) -> Vec<Table>;

#[test]
fn every_config_block_of_the_readme_loads_the_export_its_section_describes() {
    let cases: [(&str, Layout); 3] = [
        ("Input contract", input_contract_example),
        ("Snowflake", snowflake_headerless),
        ("Redshift", redshift_text),
    ];
    let tables = tables_with_awkward_values();
    let blocks = readme_toml_blocks();
    for (heading, _) in &blocks {
        assert!(
            cases.iter().any(|(title, _)| title == heading),
            "a ```toml block under `{heading}` that no case of this test loads: add one"
        );
    }
    for (title, layout) in cases {
        let found: Vec<&String> = blocks
            .iter()
            .filter(|(heading, _)| heading == title)
            .map(|(_, block)| block)
            .collect();
        let [block] = found.as_slice() else {
            panic!(
                "expected one ```toml block under `{title}`, found {}",
                found.len()
            );
        };
        let config: toml::Table = block
            .parse()
            .unwrap_or_else(|e| panic!("the `{title}` block is not TOML: {e}\n{block}"));
        let ws = Workspace::new();
        ws.write_in(ws.path(), "intercom-push.toml", block.as_str());
        let unloaded = layout(&ws, &config, &tables);
        let expected = reference_plan(&unloaded);
        assert!(
            expected.contains("\"company_id\":\"quirk\""),
            "{title}: the awkward account is in the plan"
        );
        assert_eq!(
            plan(&ws),
            expected,
            "{title}: the README's config gives another plan than the same rows as plain CSV"
        );
        eprintln!(
            "{title}: the config block loads its export ({} lines)",
            block.lines().count()
        );
    }
}

/// `gen --out DIR args…` in `ws`.
fn gen(ws: &Workspace, name: &str, args: &[&str]) -> PathBuf {
    let out = ws.path().join(name);
    let mut all = vec!["gen", "--accounts", "300", "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    ws.run(&all).ok();
    out
}

/// A table and its part files, in name order.
type TableParts = (String, Vec<PathBuf>);

/// The part files of each table folder of a `gen --parts` export (without `_SUCCESS`).
fn gen_parts(export: &Path) -> Vec<TableParts> {
    let mut tables = Vec::new();
    for entry in std::fs::read_dir(export).unwrap() {
        let folder = entry.unwrap().path();
        let table = folder.file_name().unwrap().to_str().unwrap().to_string();
        let mut parts: Vec<PathBuf> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.ends_with("_SUCCESS"))
            .collect();
        parts.sort();
        tables.push((table, parts));
    }
    tables
}

/// Copies `from` to `to`, making its folders.
fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap();
}

#[test]
fn the_layouts_the_readme_says_need_no_config_load_without_one() {
    let ws = Workspace::new();
    let expected = plan_of_dir(&ws, &gen(&ws, "reference", &[]));
    let csv_parts = gen_parts(&gen(&ws, "csv-parts", &["--gzip", "--parts", "2"]));
    let parquet_parts = gen_parts(&gen(
        &ws,
        "pq-parts",
        &["--format", "parquet", "--parts", "2"],
    ));
    // Part `i` of `table` → its path in the export, as each warehouse names it.
    type Name = fn(&str, usize) -> String;
    let parted: [(&str, &[TableParts], Name); 7] = [
        ("BigQuery, Parquet", &parquet_parts, |t, i| {
            format!("{t}/{t}-{i:012}.parquet")
        }),
        ("BigQuery, CSV", &csv_parts, |t, i| {
            format!("{t}/{t}-{i:012}.csv.gz")
        }),
        ("Snowflake, Parquet", &parquet_parts, |t, i| {
            format!("{t}/data_0_{i}_0.snappy.parquet")
        }),
        ("Snowflake, CSV", &csv_parts, |t, i| {
            format!("{t}/data_0_{i}_0.csv.gz")
        }),
        ("Redshift, Parquet", &parquet_parts, |t, i| {
            format!("{t}{i:04}_part_00.parquet")
        }),
        ("Spark, Parquet", &parquet_parts, |t, i| {
            format!("{t}/part-{i:05}-1f0c-c000.snappy.parquet")
        }),
        ("Spark, CSV", &csv_parts, |t, i| {
            format!("{t}/part-{i:05}-1f0c-c000.csv.gz")
        }),
    ];
    for (layout, tables, name) in parted {
        let export = ws.path().join(layout.replace([',', ' '], ""));
        for (table, parts) in tables {
            for (i, part) in parts.iter().enumerate() {
                copy(part, &export.join(name(table, i)));
            }
        }
        if layout.starts_with("Spark") {
            for (table, _) in tables {
                std::fs::write(export.join(table).join("_SUCCESS"), "").unwrap();
            }
        }
        assert_eq!(plan_of_dir(&ws, &export), expected, "{layout}");
    }
    // Postgres `\copy … TO PROGRAM 'gzip > <table>.csv.gz'`, DuckDB `COPY … TO '<table>.parquet'`.
    for (layout, args) in [
        ("Postgres, CSV", &["--gzip"][..]),
        ("DuckDB, Parquet", &["--format", "parquet"][..]),
    ] {
        let export = gen(&ws, &layout.replace([',', ' '], ""), args);
        assert_eq!(plan_of_dir(&ws, &export), expected, "{layout}");
    }
}

/// load (no config) + transform + `plan --json --all` of the export in `dir`, in a database
/// of its own (`<dir>.db`: nothing is skipped as unchanged).
fn plan_of_dir(ws: &Workspace, dir: &Path) -> String {
    let db = dir.with_extension("db");
    let db = db.to_str().unwrap();
    ws.run(&["--db", db, "load", "--input", dir.to_str().unwrap()])
        .ok();
    ws.run(&["--db", db, "transform"]).ok();
    let plan = ws
        .run(&["--db", db, "plan", "--json", "--all"])
        .ok()
        .stdout
        .clone();
    assert!(plan.lines().count() > 300, "{plan}");
    plan
}

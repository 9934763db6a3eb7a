//! Exports laid out the way warehouses write them, through the real binary: each layout must
//! give exactly the `plan --json --all` of the same data as one file per table
//! (`fixtures/<name>.plan.ndjson`). Rows are shuffled across parts, so no part is ordered by
//! account.

mod common;

use std::path::{Path, PathBuf};

use common::layouts::{csv_text, deal, fixture_csv_tables, Table};
use common::{manifest_dir, Workspace};

fn golden(name: &str) -> String {
    std::fs::read_to_string(manifest_dir().join(format!("fixtures/{name}.plan.ndjson"))).unwrap()
}

/// load + transform + `plan --json --all` of `input` (with `config` when given).
fn plan_of(ws: &Workspace, input: &Path, config: Option<&Path>) -> String {
    let mut args = Vec::new();
    if let Some(config) = config {
        args.extend(["--config", config.to_str().unwrap()]);
    }
    let load = [
        args.clone(),
        vec!["load", "--input", input.to_str().unwrap()],
    ]
    .concat();
    ws.run(&load).ok();
    ws.run(&[args.clone(), vec!["transform"]].concat()).ok();
    ws.run(&["plan", "--json", "--all"]).ok().stdout.clone()
}

fn config_for(ws: &Workspace, tables: &[Table], extra: &str) -> PathBuf {
    let mut text = String::new();
    for table in tables {
        let columns: Vec<String> = table.header.iter().map(|c| format!("{c:?}")).collect();
        text.push_str(&format!(
            "[tables.{}]\nheader = false\ncolumns = [{}]\n{extra}\n",
            table.name,
            columns.join(", ")
        ));
    }
    ws.write_in(ws.path(), "intercom-push.toml", text)
}

#[test]
fn gzip_csv_part_folders_with_success_markers_give_the_single_file_plan() {
    let ws = Workspace::new();
    for table in fixture_csv_tables() {
        let dir = ws.export().join(&table.name);
        for (i, rows) in deal(&table.rows, 3).iter().enumerate() {
            let name = format!("part-0000{i}-4f2c1a9e-c000.csv.gz");
            ws.write_in(
                &dir,
                &name,
                csv_text(Some(&table.header), rows, b',', false, false, None),
            );
            ws.write_in(&dir, &format!(".{name}.crc"), "crc");
        }
        ws.write_in(&dir, "_SUCCESS", "");
        ws.write_in(&dir, "_committed_1234", "{}");
        // An empty part, compressed: a slice that held no rows.
        ws.write_in(&dir, "part-00009-empty-c000.csv.gz", "");
    }
    let plan = plan_of(&ws, &ws.export(), None);
    assert_eq!(plan, golden("export"));
}

#[test]
fn snowflake_headerless_gzip_parts_configured_with_columns_give_the_single_file_plan() {
    let ws = Workspace::new();
    let tables = fixture_csv_tables();
    for table in &tables {
        let dir = ws.export().join(&table.name);
        for (i, rows) in deal(&table.rows, 2).iter().enumerate() {
            ws.write_in(
                &dir,
                &format!("data_0_{i}_0.csv.gz"),
                csv_text(None, rows, b',', false, false, None),
            );
        }
    }
    let config = config_for(&ws, &tables, "");
    let plan = plan_of(&ws, &ws.export(), Some(&config));
    assert_eq!(plan, golden("export"));
}

#[test]
fn redshift_parts_named_by_a_glob_in_the_config_were_refused_as_found_twice() {
    // `[tables.<table>] path = "<table>[0-9][0-9][0-9][0-9]_part_*"`: the glob names the parts
    // that discovery finds in the input directory too; the configured path is the table.
    let ws = Workspace::new();
    let tables = fixture_csv_tables();
    let mut config = String::new();
    for table in &tables {
        for (i, rows) in deal(&table.rows, 2).iter().enumerate() {
            let text = csv_text(Some(&table.header), rows, b',', false, false, None);
            ws.write(&format!("{}000{i}_part_00", table.name), text);
        }
        config.push_str(&format!(
            "[tables.{0}]\npath = \"{0}[0-9][0-9][0-9][0-9]_part_*\"\n",
            table.name
        ));
    }
    let config = ws.write_in(ws.path(), "intercom-push.toml", config);
    let plan = plan_of(&ws, &ws.export(), Some(&config));
    assert_eq!(plan, golden("export"));
}

#[test]
fn redshift_pipe_delimited_extensionless_parts_give_the_single_file_plan() {
    // UNLOAD … DELIMITER '|' ADDQUOTES ESCAPE NULL AS '\N': every field quoted, quotes and
    // backslashes escaped with a backslash, parts named <table>NNNN_part_NN.
    let ws = Workspace::new();
    let tables = fixture_csv_tables();
    for table in &tables {
        for (i, rows) in deal(&table.rows, 2).iter().enumerate() {
            let text = csv_text(None, rows, b'|', true, true, Some("\\N"));
            ws.write(&format!("{}000{i}_part_00", table.name), text);
        }
        // A slice that held no rows.
        ws.write(&format!("{}0009_part_00", table.name), "");
    }
    let config = config_for(
        &ws,
        &tables,
        "delimiter = \"|\"\nescape = \"\\\\\"\nnull = \"\\\\N\"",
    );
    let plan = plan_of(&ws, &ws.export(), Some(&config));
    assert_eq!(plan, golden("export"));
}

#[test]
fn bigquery_ndjson_parts_named_json_give_the_single_file_plan() {
    let ws = Workspace::new();
    let fixture = manifest_dir().join("fixtures/vitally-json");
    for entry in std::fs::read_dir(&fixture).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::copy(&path, ws.export().join(&name)).unwrap();
    }
    // accounts.ndjson → accounts/accounts-00000000000N.json (NDJSON in `.json` files).
    let accounts = std::fs::read_to_string(fixture.join("accounts.ndjson")).unwrap();
    std::fs::remove_file(ws.export().join("accounts.ndjson")).unwrap();
    let lines: Vec<&str> = accounts.lines().collect();
    let dir = ws.export().join("accounts");
    for (i, part) in deal(&lines, 3).iter().enumerate() {
        ws.write_in(
            &dir,
            &format!("accounts-00000000000{i}.json"),
            part.join("\n") + "\n",
        );
    }
    // users.ndjson.gz → users/users-000000000000.json.gz
    let users = std::fs::read(fixture.join("users.ndjson.gz")).unwrap();
    std::fs::remove_file(ws.export().join("users.ndjson.gz")).unwrap();
    std::fs::create_dir(ws.export().join("users")).unwrap();
    std::fs::write(ws.export().join("users/users-000000000000.json.gz"), users).unwrap();
    let plan = plan_of(&ws, &ws.export(), None);
    assert_eq!(plan, golden("vitally-json"));
}

#[test]
fn zstd_files_and_a_configured_glob_give_the_single_file_plan() {
    let ws = Workspace::new();
    let tables = fixture_csv_tables();
    let tonight = ws.path().join("exports/tonight");
    let mut config = String::new();
    for table in &tables {
        let text = csv_text(Some(&table.header), &table.rows, b',', false, false, None);
        if table.name == "accounts" {
            for (i, rows) in deal(&table.rows, 4).iter().enumerate() {
                let part = csv_text(Some(&table.header), rows, b',', false, false, None);
                ws.write_in(&tonight, &format!("accounts_{i}.csv.gz"), part);
            }
            config.push_str(&format!(
                "[tables.accounts]\npath = {:?}\n",
                tonight.join("accounts_*.csv.gz").display().to_string()
            ));
        } else {
            let compressed = zstd::encode_all(text.as_bytes(), 3).unwrap();
            std::fs::write(
                ws.export().join(format!("{}.csv.zst", table.name)),
                compressed,
            )
            .unwrap();
        }
    }
    let config = ws.write_in(ws.path(), "intercom-push.toml", config);
    let plan = plan_of(&ws, &ws.export(), Some(&config));
    assert_eq!(plan, golden("export"));
}

#[test]
fn a_column_typed_over_every_part_is_a_string_when_one_part_holds_text() {
    let ws = Workspace::new();
    let dir = ws.export().join("accounts");
    ws.write_in(&dir, "part-1.csv", "externalId,seats\na,1\nb,2\n");
    ws.write_in(&dir, "part-7.csv.gz", "externalId,seats\nc,N/A\n");
    let plan = plan_of(&ws, &ws.export(), None);
    for line in plan.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let seats = &v["custom_attributes"]["Vitally Seats"];
        assert!(
            seats.is_string(),
            "seats must be a string in every payload: {line}"
        );
    }
    assert!(plan.contains(r#""Vitally Seats":"1""#), "{plan}");
}

#[test]
fn an_error_in_a_part_names_the_part_and_its_line() {
    let ws = Workspace::new();
    let dir = ws.export().join("accounts");
    ws.write_in(&dir, "part-00000.csv", "externalId,mrr\na,1\nb,2\n");
    ws.write_in(&dir, "part-00001.csv", "externalId,mrr\nc,3\nd,lots\n");
    let run = ws.load();
    run.expect_code(2);
    assert!(
        run.stderr
            .contains("accounts/part-00001.csv:3: `mrr` must be a number"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_duplicate_account_across_parts_names_both_places() {
    let ws = Workspace::new();
    let dir = ws.export().join("accounts");
    ws.write_in(&dir, "part-00000.csv", "externalId,mrr\na,1\nb,2\n");
    ws.write_in(&dir, "part-00001.csv", "externalId,mrr\nc,3\na,4\n");
    let run = ws.load();
    run.expect_code(2);
    assert!(
        run.stderr.contains(
            "accounts/part-00001.csv:3: duplicate account `a` (first at accounts/part-00000.csv:2)"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn an_element_count_given_in_the_account_and_in_element_counts_is_refused() {
    // Each source alone is checked as it is read; the two meet only when the account's
    // children are packed, which must not pick one of them silently.
    let ws = Workspace::new();
    ws.write(
        "accounts.ndjson",
        "{\"externalId\":\"a\",\"currentElementCounts\":{\"Seats\":3}}\n{\"externalId\":\"b\"}\n",
    );
    ws.write(
        "element_counts.csv",
        "account_id,element_id,count\nb,Seats,1\na,Seats,4\n",
    );
    let run = ws.load();
    run.expect_code(2);
    assert!(
        run.stderr
            .contains("accounts.ndjson:1: this account gives element `Seats` both itself and in element_counts"),
        "{}",
        run.stderr
    );
}

"""Runs bench/duckdb/payloads.sql with DuckDB's Python package (the pip wheel has no CLI).

    run.py SQL_FILE DIR [--lines FILE]

DIR holds `export/` (a symlink to the export); the script writes DIR/payloads.parquet and DuckDB
spills there if it must. With --lines, also writes every payload as one line to FILE (for the
comparison with `intercom-push plan --json --all`).
"""

import os
import sys

import duckdb

sql_file, work_dir = sys.argv[1], sys.argv[2]
sql = open(sql_file, encoding="utf-8").read()
os.chdir(work_dir)
connection = duckdb.connect(config={"temp_directory": os.path.join(work_dir, "duckdb.tmp")})
connection.execute("SET enable_progress_bar = false")
connection.execute(sql)
if sys.argv[3:4] == ["--lines"]:
    with open(sys.argv[4], "w", encoding="utf-8") as out:
        for (payload,) in connection.sql("SELECT payload FROM 'payloads.parquet'").fetchall():
            out.write(payload + "\n")

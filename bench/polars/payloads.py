"""The data engineer's alternative to `intercom-push load` + `transform`, in Polars (issue 28).

A second benchmark anchor beside bench/duckdb/payloads.sql: what someone might write instead
of this tool with Polars' lazy API. It reads the eight CSVs of a `gen` export and builds
every company's and user's payload as `intercom-push plan --json --all` prints it (one JSON
line per record: "type", then the record's ids, "monthly_spend", and "custom_attributes" with
its keys in byte order and typed values), with a 64-bit hash of each (Polars' `hash()`, a fast
non-cryptographic one like intercom-push's xxh3), and writes them to DIR/payloads.parquet so
that none of the work can be optimised away. bench/run.sh times it on the same export as
intercom-push and as the DuckDB script, and compares its lines byte for byte with
`plan --json --all` on a 1k-account export (bench/README.md, "The Polars script").

    python payloads.py DIR [--lines FILE]

DIR holds `export/` (the export, or a symlink to it: one CSV file per table, as `gen` writes
them by default and as bench/run.sh times them); the script writes DIR/payloads.parquet.
With --lines, it also writes every payload as one line to FILE (for the comparison with
`intercom-push plan --json --all`). Polars uses every core.

Written for Polars 2.1.0 (`pip install polars==2.1.0`; bench/run.sh installs the version of
BENCH_POLARS_VERSION into its virtual environment).

The rules are intercom-push's (README "Attribute rules"), ported as bench/duckdb/payloads.sql
ports them; every per-row step is a Polars expression in one lazy query. Python only decides
the shape of that query, once per attribute: the start case of the account columns' names
(a port of lodash's `_.startCase`, below), the byte order of the attribute names, and the
account columns' types, written here for the generator's fixed columns as in the DuckDB
script (an account column not listed is an error). Element and Metric names come from the
files (read first: they are the query's columns), and so do the Metric value types and
everything else.

Known limits, none of which a generated export exercises: names are start-cased with
Python's Unicode tables (str.upper) rather than Rust's, and an account column that is
snake_case where another is camelCase for the same name (`health_score`, `healthScore`) is not
reported as the clash intercom-push refuses.
"""

import argparse
import os
import re
import sys
import unicodedata

import polars as pl

PREFIX = "Vitally"
MAX_STRING_CHARS = 255  # Intercom's limit: longer strings are cut to 254 characters + "…"
MONTHLY_SPEND_MAX = 2147483647

# The account columns of `intercom-push gen`, each with the kind intercom-push infers for it
# (as in bench/duckdb/payloads.sql). `id`, `externalId` and `accountOwnerId` are not sent.
ACCOUNT_KINDS = {
    "name": "string",
    "mrr": "float",
    "healthScore": "float",
    "type": "string",
    "npsScore": "integer",
    "nextRenewalDate": "string",
    "zipCode": "string",
    "isEnterprise": "boolean",
    "seats": "integer",
    "plan": "string",
    "industry": "string",
    "country": "string",
    "createdAt": "string",
    "churnProbability": "float",
}
NOT_SENT = ("id", "externalId", "accountOwnerId")
LABEL_ATTRIBUTES = {
    "risk": "Active Risk Indicators",
    "opportunity": "Active Opportunity Indicators",
    "segment": "Segments",
}


# ----------------------------------------------------------------------------------------
# lodash 4.17.21 `_.startCase` (src/transform/start_case.rs is intercom-push's port): its
# regular expressions transcribed, with JavaScript's UTF-16 surrogate pairs written as the
# astral code points they encode. Runs once per account column, never per row.

_ASTRAL = "\U00010000-\U0010ffff"
_COMBO = "\u0300-\u036f\ufe20-\ufe2f\u20d0-\u20ff"
_DINGBAT = "\u2700-\u27bf"
_LOWER = "a-z\xdf-\xf6\xf8-\xff"
_BREAK = (
    "\xac\xb1\xd7\xf7"  # rsMathOpRange
    "\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\xbf"  # rsNonCharRange
    "\u2000-\u206f"  # rsPunctuationRange
    " \t\x0b\f\xa0\ufeff\n\r\u2028\u2029\u1680\u180e\u2000-\u200a\u202f\u205f\u3000"  # rsSpaceRange
)
_UPPER = "A-Z\xc0-\xd6\xd8-\xde"
_rs = {
    "apos": "['\u2019]",
    "break": f"[{_BREAK}]",
    "combo": f"[{_COMBO}]",
    "dingbat": f"[{_DINGBAT}]",
    "lower": f"[{_LOWER}]",
    "misc": f"[^{_ASTRAL}{_BREAK}0-9+{_DINGBAT}{_LOWER}{_UPPER}]",
    "fitz": "[\U0001f3fb-\U0001f3ff]",
    "nonastral": f"[^{_ASTRAL}]",
    "regional": "[\U0001f1e6-\U0001f1ff]{2}",
    "surrpair": f"[{_ASTRAL}]",
    "upper": f"[{_UPPER}]",
    "zwj": "\u200d",
    "optvar": "[\ufe0e\ufe0f]?",
}
_rs["modifier"] = f"(?:{_rs['combo']}|{_rs['fitz']})"
_rs["misclower"] = f"(?:{_rs['lower']}|{_rs['misc']})"
_rs["miscupper"] = f"(?:{_rs['upper']}|{_rs['misc']})"
_rs["contrlower"] = f"(?:{_rs['apos']}(?:d|ll|m|re|s|t|ve))?"
_rs["contrupper"] = f"(?:{_rs['apos']}(?:D|LL|M|RE|S|T|VE))?"
_rs["optjoin"] = (
    f"(?:{_rs['zwj']}(?:{_rs['nonastral']}|{_rs['regional']}|{_rs['surrpair']})"
    f"{_rs['optvar']}{_rs['modifier']}?)*"
)
_rs["seq"] = f"{_rs['optvar']}{_rs['modifier']}?{_rs['optjoin']}"
_UNICODE_WORD = re.compile(
    "|".join(
        [
            f"{_rs['upper']}?{_rs['lower']}+{_rs['contrlower']}(?={_rs['break']}|{_rs['upper']}|\\Z)",
            f"{_rs['miscupper']}+{_rs['contrupper']}(?={_rs['break']}|{_rs['upper']}{_rs['misclower']}|\\Z)",
            f"{_rs['upper']}?{_rs['misclower']}+{_rs['contrlower']}",
            f"{_rs['upper']}+{_rs['contrupper']}",
            "[0-9]*(?:1ST|2ND|3RD|(?![123])[0-9]TH)(?=\\b|[a-z_])",
            "[0-9]*(?:1st|2nd|3rd|(?![123])[0-9]th)(?=\\b|[A-Z_])",
            "[0-9]+",
            f"(?:{_rs['dingbat']}|{_rs['regional']}|{_rs['surrpair']}){_rs['seq']}",
        ]
    ),
    re.ASCII,  # JavaScript's \b without the u flag: ASCII word characters
)
_HAS_UNICODE_WORD = re.compile("[a-z][A-Z]|[A-Z]{2}[a-z]|[0-9][a-zA-Z]|[a-zA-Z][0-9]|[^a-zA-Z0-9 ]")
_ASCII_WORD = re.compile("[^\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]+")
_HAS_UNICODE = re.compile(f"[\u200d{_ASTRAL}{_COMBO}\ufe0e\ufe0f]")
_SYMBOL = re.compile(
    f"{_rs['fitz']}(?={_rs['fitz']})"
    f"|(?:{_rs['nonastral']}{_rs['combo']}?|{_rs['combo']}|{_rs['regional']}|{_rs['surrpair']}){_rs['seq']}"
)
# lodash deburredLetters where Unicode's canonical decomposition does not give them.
_DEBURR = {
    "Æ": "Ae", "æ": "ae", "Ð": "D", "ð": "d", "Ø": "O", "ø": "o", "Þ": "Th", "þ": "th",
    "ß": "ss", "Đ": "D", "đ": "d", "Ħ": "H", "ħ": "h", "ı": "i", "Ĳ": "IJ", "ĳ": "ij",
    "ĸ": "k", "Ŀ": "L", "ŀ": "l", "Ł": "L", "ł": "l", "ŉ": "'n", "Ŋ": "N", "ŋ": "n",
    "Œ": "Oe", "œ": "oe", "Ŧ": "T", "ŧ": "t", "ſ": "s",
}


def _deburr_letter(c):
    if c in _DEBURR:
        return _DEBURR[c]
    if "\xc0" <= c <= "\u017f" and c not in "\xd7\xf7":
        return unicodedata.normalize("NFD", c)[0]
    return c


def start_case(name):
    text = "".join(_deburr_letter(c) for c in name)
    text = re.sub(f"{_rs['combo']}|{_rs['apos']}", "", text)
    words = (_UNICODE_WORD if _HAS_UNICODE_WORD.search(text) else _ASCII_WORD).findall(text)

    def upper_first(word):
        first = _SYMBOL.match(word).group() if _HAS_UNICODE.search(word) else word[0]
        return first.upper() + word[len(first) :]

    return " ".join(upper_first(w) for w in words)


# ----------------------------------------------------------------------------------------
# JSON text as serde_json writes it (compact), as Polars expressions.

# serde_json's string escapes: the quote, the backslash, and every control character below
# U+0020 (\b \t \n \f \r, the others as \u00xx in lower-case hex). One pass (Aho-Corasick).
_ESCAPES = {"\\": "\\\\", '"': '\\"'}
_ESCAPES.update({chr(c): "\\u%04x" % c for c in range(0x20)})
_ESCAPES.update({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"})
_ESCAPE_FROM, _ESCAPE_TO = list(_ESCAPES), list(_ESCAPES.values())


def json_string(expr):
    """A string as a JSON string (null stays null)."""
    return pl.concat_str(pl.lit('"'), expr.str.replace_many(_ESCAPE_FROM, _ESCAPE_TO), pl.lit('"'))


def json_float(expr):
    """A Float64 as intercom-push writes it: Polars' text is the same shortest round-trip
    form (`0.93`, `292.0`, `1e-7`, `1e+17`). NaN and infinities are not sent (null), as
    intercom-push drops them."""
    return pl.when(expr.is_finite()).then(expr.cast(pl.String))


def cut(expr):
    """A string attribute value cut to Intercom's limit: 254 characters and "…" when longer
    than 255 (characters, not bytes)."""
    return (
        pl.when(expr.str.len_chars() > MAX_STRING_CHARS)
        .then(pl.concat_str(expr.str.slice(0, MAX_STRING_CHARS - 1), pl.lit("\u2026")))
        .otherwise(expr)
    )


def json_value(expr, kind):
    """The JSON text of a CSV cell of a column of `kind`; null when empty. Casts are not
    strict: the metrics' branches of when/then are evaluated on the values of every kind."""
    if kind == "integer":
        return expr.cast(pl.Int64, strict=False).cast(pl.String)
    if kind == "float":
        return json_float(expr.cast(pl.Float64, strict=False))
    if kind == "boolean":  # every cell is true or false in some case
        return expr.str.to_lowercase()
    return json_string(cut(expr))


# `-?(0|[1-9][0-9]*)`: JSON's integer grammar; with a fraction and an exponent, its numbers.
INTEGER = r"^-?(0|[1-9][0-9]*)$"
NUMBER = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$"


def kind_of(value):
    """One kind over all the values of a group (src/extract/typing.rs): integer if every value
    is a JSON integer that fits 64 bits, else float if every one is a JSON number, else boolean
    if every one is true/false in any case, else string."""
    return (
        pl.when((value.str.contains(INTEGER) & value.cast(pl.Int64, strict=False).is_not_null()).all())
        .then(pl.lit("integer"))
        .when(value.str.contains(NUMBER).all())
        .then(pl.lit("float"))
        .when(value.str.to_lowercase().is_in(["true", "false"]).all())
        .then(pl.lit("boolean"))
        .otherwise(pl.lit("string"))
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", help="the directory holding export/; payloads.parquet is written there")
    parser.add_argument("--lines", metavar="FILE", help="also write every payload as one line to FILE")
    args = parser.parse_args()
    export = os.path.join(args.dir, "export")

    def scan(table, **types):
        # Every column as text but those given a type; empty cells are nulls.
        return pl.scan_csv(os.path.join(export, table + ".csv"), infer_schema=False, schema_overrides=types)

    # Attribute names: `Vitally <name>` with what Intercom refuses in a name replaced by a
    # space and whitespace collapsed (src/transform/mapping.rs: intercom_safe; Rust's
    # is_alphanumeric is \p{Alphabetic} or \p{N}).
    def safe(expr):
        return (
            pl.lit(PREFIX + " ")
            + expr.str.replace_all(r"[^\p{Alphabetic}\p{N} _$€£¥-]", " ")
            .str.replace_all(r"\s+", " ")
            .str.strip_chars(" ")
        )

    # The dimension tables (a few dozen rows) are read first: their rows are the payloads'
    # columns, so the query is built from them.
    elements = scan("elements").select("id", attribute=safe(pl.col("name"))).collect()
    metrics = scan("success_metrics").select("id", attribute=safe(pl.col("name"))).collect()
    types = {"integer": pl.Int64, "float": pl.Float64}
    accounts = scan("accounts", **{c: types[k] for c, k in ACCOUNT_KINDS.items() if k in types})
    columns = accounts.collect_schema().names()
    unknown = [c for c in columns if c not in ACCOUNT_KINDS and c not in NOT_SENT]
    if unknown:
        sys.exit(f"payloads.py: account column(s) {unknown} have no kind in ACCOUNT_KINDS")

    # (attribute name, member expression) of every company attribute: `"name":value`, null
    # when the account has no value for it (concat_str of a null is null).
    members = []

    # Fields: each account column but the ids, typed by its kind; empty cells are not sent.
    # Its name is the start case of the column's, made safe like the others.
    fields = {c: json_value(pl.col(c), ACCOUNT_KINDS[c]) for c in columns if c not in NOT_SENT}
    field_names = pl.DataFrame({"id": list(fields), "name": [start_case(c) for c in fields]})
    for column, attribute in field_names.select("id", attribute=safe(pl.col("name"))).iter_rows():
        if attribute != PREFIX + " ":
            members.append((attribute, pl.col(f"field:{column}")))

    # Elements: every Element on every company, the account's count or 0.
    element_ids = [i for i, a in elements.iter_rows() if a != PREFIX + " "]
    for element, attribute in elements.iter_rows():
        if attribute != PREFIX + " ":
            members.append((attribute, pl.col(f"element:{element}").fill_null(0).cast(pl.String)))
    counts = scan("element_counts", count=pl.Int64).pivot(
        on="element_id",
        on_columns=element_ids,
        index="account_id",
        values="count",
        aggregate_function="first",
    )
    counts = counts.rename({e: f"element:{e}" for e in element_ids})

    # Success Metrics: the values typed per metric (one kind over all its values), absent
    # when the account has none.
    metric_ids = [i for i, a in metrics.iter_rows() if a != PREFIX + " "]
    for metric, attribute in metrics.iter_rows():
        if attribute != PREFIX + " ":
            members.append((attribute, pl.col(f"metric:{metric}")))
    value = pl.col("value")
    values = (
        scan("metric_values")
        .filter(value.is_not_null())
        .with_columns(kind=kind_of(value).over("metric_id"))
        .select(
            "account_id",
            "metric_id",
            json=pl.when(pl.col("kind") == "integer")
            .then(json_value(value, "integer"))
            .when(pl.col("kind") == "float")
            .then(json_value(value, "float"))
            .when(pl.col("kind") == "boolean")
            .then(json_value(value, "boolean"))
            .otherwise(json_value(value, "string")),
        )
        .pivot(on="metric_id", on_columns=metric_ids, index="account_id", values="json", aggregate_function="first")
        .rename({m: f"metric:{m}" for m in metric_ids})
    )

    # Indicators and segments: names trimmed, duplicates removed, sorted case-insensitively
    # (Unicode lower case, ties by bytes), joined with ", "; "" when none.
    labels = (
        pl.concat(
            [
                scan("indicators").select(
                    "account_id",
                    kind=pl.col("kind").str.strip_chars().str.to_lowercase(),
                    name=pl.col("name").str.strip_chars(),
                ),
                scan("segments").select("account_id", kind=pl.lit("segment"), name=pl.col("name").str.strip_chars()),
            ]
        )
        .drop_nulls("name")
        .unique()
        .group_by("account_id", "kind")
        .agg(pl.col("name").sort_by(pl.col("name").str.to_lowercase(), pl.col("name")).str.join(", "))
        .pivot(
            on="kind",
            on_columns=list(LABEL_ATTRIBUTES),
            index="account_id",
            values="name",
            aggregate_function="first",
        )
        .rename({k: f"label:{k}" for k in LABEL_ATTRIBUTES})
    )
    for kind, attribute in LABEL_ATTRIBUTES.items():
        members.append((f"{PREFIX} {attribute}", json_string(cut(pl.col(f"label:{kind}").fill_null("")))))

    # The custom attributes' keys in byte order (Python's str order is code point order,
    # which is UTF-8's byte order); two sources of one name is intercom-push's error too.
    members.sort(key=lambda m: m[0])
    names = [m[0] for m in members]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        sys.exit(f"payloads.py: two sources give one attribute name: {twice}")

    def key(attribute):  # `"name":` (names are JSON-escaped once, here)
        return pl.lit('"' + "".join(_ESCAPES.get(c, c) for c in attribute) + '":')

    mrr = pl.col("mrr")
    companies = (
        accounts.with_columns(**{f"field:{c}": v for c, v in fields.items()})
        .join(counts, left_on="id", right_on="account_id", how="left")
        .join(values, left_on="id", right_on="account_id", how="left")
        .join(labels, left_on="id", right_on="account_id", how="left")
        .select(
            kind=pl.lit("company"),
            record_key=pl.col("externalId"),
            payload=pl.concat_str(
                pl.lit('{"type":"company","company_id":'),
                json_string(pl.col("externalId")),
                # MRR rounded half away from zero (Polars' default is half to even) and
                # clamped to Intercom's 32-bit range; absent when there is no MRR.
                pl.lit(',"monthly_spend":')
                + mrr.round(0, mode="half_away_from_zero").clip(0, MONTHLY_SPEND_MAX).cast(pl.Int64).cast(pl.String),
                pl.lit(',"custom_attributes":{'),
                pl.concat_str([key(a) + v for a, v in members], separator=",", ignore_nulls=True),
                pl.lit("}}"),
                ignore_nulls=True,
            ),
        )
    )

    # Users: "Vitally Account Owner" is true iff some account's accountOwnerId names the user
    # (by the users' id when the users have one, else by their externalId).
    users = scan("users")
    by = "id" if "id" in users.collect_schema().names() else "externalId"
    owners = accounts.select(pl.col("accountOwnerId").alias(by)).drop_nulls().unique().with_columns(owner=pl.lit(True))
    users = users.join(owners, on=by, how="left").select(
        kind=pl.lit("user"),
        record_key=pl.coalesce("externalId", "email"),
        payload=pl.concat_str(
            pl.lit('{"type":"user","external_id":'),
            json_string(pl.col("externalId")).fill_null("null"),
            pl.lit(',"email":'),
            json_string(pl.col("email")).fill_null("null"),
            pl.lit(',"custom_attributes":{"Vitally Account Owner":'),
            pl.when(pl.col("owner")).then(pl.lit("true")).otherwise(pl.lit("false")),
            pl.lit("}}"),
        ),
    )

    out = os.path.join(args.dir, "payloads.parquet")
    pl.concat([companies, users]).with_columns(hash=pl.col("payload").hash()).sink_parquet(out)
    if args.lines:
        with open(args.lines, "w", encoding="utf-8") as lines:
            for payload in pl.scan_parquet(out).select("payload").collect().to_series():
                lines.write(payload + "\n")


if __name__ == "__main__":
    main()

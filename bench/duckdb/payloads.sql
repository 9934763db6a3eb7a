-- The data engineer's alternative to `intercom-push load` + `transform`, in DuckDB (issue 11):
-- reads the eight CSVs of a `gen` export and builds every company's and user's payload as
-- `intercom-push plan --json --all` prints it (one JSON line per record, attribute keys in byte
-- order, typed values), with a hash of each, written to payloads.parquet so that none of the
-- work can be optimised away. bench/run.sh times it on the same export as intercom-push and
-- compares the lines byte for byte (bench/README.md).
--
-- Run from a directory holding `export/` (the export, or a symlink to it). DuckDB uses every
-- core. Only the field attribute names (lodash start case of the generator's fixed account
-- columns) and the account columns' types are written here; the Element and Metric attribute
-- names, the Metric value types and everything else come from the files, with intercom-push's
-- rules (README "Attribute rules"). The hash is DuckDB's 64-bit hash(): like intercom-push's
-- xxh3 a fast non-cryptographic one, so the comparison does not charge DuckDB for md5.

-- `Vitally <name>` with what Intercom refuses in an attribute name replaced by spaces and
-- whitespace collapsed (src/transform/mapping.rs: intercom_safe; [\p{L}\p{N}] is Rust's
-- is_alphanumeric but for combining marks, which no generated name has).
CREATE TEMP MACRO attribute_name(name) AS
    'Vitally ' || trim(regexp_replace(regexp_replace(name, '[^\p{L}\p{N} _$€£¥-]', ' ', 'g'), ' +', ' ', 'g'));

CREATE TEMP TABLE accounts AS
SELECT * FROM read_csv('export/accounts.csv', header = true, types = {
    'id': 'VARCHAR', 'externalId': 'VARCHAR', 'accountOwnerId': 'VARCHAR', 'name': 'VARCHAR',
    'mrr': 'DOUBLE', 'healthScore': 'DOUBLE', 'type': 'VARCHAR', 'npsScore': 'BIGINT',
    'nextRenewalDate': 'VARCHAR', 'zipCode': 'VARCHAR', 'isEnterprise': 'BOOLEAN',
    'seats': 'BIGINT', 'plan': 'VARCHAR', 'industry': 'VARCHAR', 'country': 'VARCHAR',
    'createdAt': 'VARCHAR', 'churnProbability': 'DOUBLE'});

CREATE TEMP TABLE metric_values AS
SELECT account_id, metric_id, value
FROM read_csv('export/metric_values.csv', header = true, all_varchar = true)
WHERE value IS NOT NULL;

-- One type per Success Metric over all its values (src/extract/typing.rs): integer if every
-- value is a JSON integer that fits 64 bits, else float if every one is a JSON number, else
-- boolean if every one is true/false in any case, else string.
CREATE TEMP TABLE metric_kinds AS
SELECT metric_id AS id,
    CASE
        WHEN bool_and(regexp_full_match(value, '-?(0|[1-9][0-9]*)') AND TRY_CAST(value AS BIGINT) IS NOT NULL) THEN 'integer'
        WHEN bool_and(regexp_full_match(value, '-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?')) THEN 'float'
        WHEN bool_and(lower(value) IN ('true', 'false')) THEN 'boolean'
        ELSE 'string'
    END AS kind
FROM metric_values GROUP BY metric_id;

-- Every company attribute: where it comes from, its JSON key, and its rank in byte order
-- (the payload's key order).
CREATE TEMP TABLE attributes AS
SELECT source, id, to_json(attribute) || ':' AS json_key, row_number() OVER (ORDER BY attribute) AS rank
FROM (
    SELECT 'field' AS source, column_name AS id, attribute FROM (VALUES
        ('churnProbability', 'Vitally Churn Probability'), ('country', 'Vitally Country'),
        ('createdAt', 'Vitally Created At'), ('healthScore', 'Vitally Health Score'),
        ('industry', 'Vitally Industry'), ('isEnterprise', 'Vitally Is Enterprise'),
        ('mrr', 'Vitally Mrr'), ('name', 'Vitally Name'),
        ('nextRenewalDate', 'Vitally Next Renewal Date'), ('npsScore', 'Vitally Nps Score'),
        ('plan', 'Vitally Plan'), ('seats', 'Vitally Seats'), ('type', 'Vitally Type'),
        ('zipCode', 'Vitally Zip Code')) f(column_name, attribute)
    UNION ALL
    SELECT 'element', id, attribute_name(name)
    FROM read_csv('export/elements.csv', header = true, all_varchar = true)
    UNION ALL
    SELECT 'metric', id, attribute_name(name)
    FROM read_csv('export/success_metrics.csv', header = true, all_varchar = true)
    WHERE id IN (SELECT id FROM metric_kinds)
    UNION ALL
    SELECT 'label', kind, attribute FROM (VALUES
        ('risk', 'Vitally Active Risk Indicators'),
        ('opportunity', 'Vitally Active Opportunity Indicators'),
        ('segment', 'Vitally Segments')) l(kind, attribute)
);

COPY (
    WITH
    -- Every attribute of every company as (account, rank, "key":value): the fields (empty
    -- cells are not sent: UNPIVOT drops the NULLs) ...
    fields AS (
        SELECT u.account, a.rank, a.json_key || u.value AS member
        FROM (
            UNPIVOT (SELECT id AS account, to_json(COLUMNS(* EXCLUDE (id, externalId, accountOwnerId))) FROM accounts)
            ON COLUMNS(* EXCLUDE account) INTO NAME id VALUE value
        ) u
        JOIN attributes a ON a.source = 'field' AND a.id = u.id
    ),
    -- ... every Element on every company, 0 when the account has no count for it ...
    elements AS (
        SELECT acc.id AS account, e.rank, e.json_key || coalesce(c.count, 0) AS member
        FROM accounts acc
        CROSS JOIN (SELECT * FROM attributes WHERE source = 'element') e
        LEFT JOIN read_csv('export/element_counts.csv', header = true,
            types = {'account_id': 'VARCHAR', 'element_id': 'VARCHAR', 'count': 'BIGINT'}) c
            ON c.account_id = acc.id AND c.element_id = e.id
    ),
    -- ... the Success Metric values, typed per metric ...
    metrics AS (
        SELECT v.account_id AS account, a.rank, a.json_key ||
            CASE k.kind
                WHEN 'integer' THEN to_json(CAST(v.value AS BIGINT))
                WHEN 'float' THEN to_json(CAST(v.value AS DOUBLE))
                WHEN 'boolean' THEN to_json(lower(v.value) = 'true')
                ELSE to_json(v.value)
            END AS member
        FROM metric_values v
        JOIN metric_kinds k ON k.id = v.metric_id
        JOIN attributes a ON a.source = 'metric' AND a.id = v.metric_id
    ),
    -- ... and the indicators and segments: names sorted case-insensitively (ties by bytes),
    -- duplicates removed, joined with ", "; "" when none.
    label_rows AS (
        SELECT DISTINCT account_id AS account, lower(trim(kind)) AS kind, trim(name) AS name
        FROM read_csv('export/indicators.csv', header = true, all_varchar = true)
        UNION ALL
        SELECT DISTINCT account_id, 'segment', trim(name)
        FROM read_csv('export/segments.csv', header = true, all_varchar = true)
    ),
    labels AS (
        SELECT acc.id AS account, a.rank,
            a.json_key || to_json(coalesce(string_agg(l.name, ', ' ORDER BY lower(l.name), l.name), '')) AS member
        FROM accounts acc
        CROSS JOIN (SELECT * FROM attributes WHERE source = 'label') a
        LEFT JOIN label_rows l ON l.account = acc.id AND l.kind = a.id
        GROUP BY acc.id, a.rank, a.json_key
    ),
    -- json_group_object with its keys in byte order (DuckDB's json_group_object is this
    -- string_agg without the ORDER BY).
    custom_attributes AS (
        SELECT account, '{' || string_agg(member, ',' ORDER BY rank) || '}' AS object
        FROM (
            SELECT * FROM fields
            UNION ALL SELECT * FROM elements
            UNION ALL SELECT * FROM metrics
            UNION ALL SELECT * FROM labels
        )
        GROUP BY account
    ),
    companies AS (
        SELECT acc.externalId AS record_key,
            -- json_merge_patch onto {} drops the null monthly_spend of an account without an
            -- MRR; the custom attributes are spliced in after it (re-parsing them in the
            -- merge would cost DuckDB a third of its time).
            left(CAST(json_merge_patch('{}', json_object(
                'type', 'company',
                'company_id', acc.externalId,
                -- MRR rounded half away from zero, clamped to Intercom's 32-bit range
                -- (DuckDB's greatest() skips NULLs: hence the CASE).
                'monthly_spend', CASE WHEN acc.mrr IS NOT NULL
                    THEN CAST(least(greatest(round(acc.mrr), 0), 2147483647) AS BIGINT) END
            )) AS VARCHAR), -1) || ',"custom_attributes":' || c.object || '}' AS payload
        FROM accounts acc JOIN custom_attributes c ON c.account = acc.id
    ),
    -- Users: "Vitally Account Owner" is true iff some account's accountOwnerId names the user
    -- (by the users' id).
    owners AS (SELECT DISTINCT accountOwnerId AS id FROM accounts WHERE accountOwnerId IS NOT NULL),
    users AS (
        SELECT coalesce(u.externalId, u.email) AS record_key,
            CAST(json_object(
                'type', 'user',
                'external_id', u.externalId,
                'email', u.email,
                'custom_attributes', json_object('Vitally Account Owner', o.id IS NOT NULL)
            ) AS VARCHAR) AS payload
        FROM read_csv('export/users.csv', header = true, all_varchar = true) u
        LEFT JOIN owners o ON o.id = u.id
    )
    SELECT 'company' AS kind, record_key, payload, hash(payload) AS hash FROM companies
    UNION ALL
    SELECT 'user', record_key, payload, hash(payload) FROM users
) TO 'payloads.parquet' (FORMAT parquet);

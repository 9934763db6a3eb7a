#!/usr/bin/env python3
"""Extract the part of Intercom's OpenAPI description that intercom-push uses.

Writes tests/data/intercom-openapi-subset.json: the operations the loader calls (with their
parameters, request bodies and responses), every component they reference, transitively, and
the security scheme. Tests read only that JSON file, so they need neither Python nor the
full description (see tests/data/README.md for origin, licence and the one deliberate change).

Usage (from the repository root; needs PyYAML: `pip install pyyaml`):

    python3 scripts/vendor-openapi.py [--published] [SOURCE_YAML] [OUTPUT_JSON]
    python3 scripts/vendor-openapi.py --preview [SOURCE_YAML] [OUTPUT_JSON]

`--published` leaves out the one deliberate change: the subset exactly as Intercom publishes
it, which tests/intercom_contract.rs compares with the committed file (the two must differ at
the widened schema only).

SOURCE_YAML defaults to ../shared/intercom-openapi/api.intercom.io.yaml (intercom/Intercom-OpenAPI,
descriptions/2.16/api.intercom.io.yaml at 8889625a7b931d8649e18726e7f872ff073520fc).
The output is deterministic (sorted keys), so re-running it reproduces the committed file.

`--preview` extracts the Preview API operations the loader may call instead (PREVIEW_OPERATIONS:
bulk updates, their job GETs, company search) from the Preview description, SOURCE_YAML
defaulting to ../shared/intercom-openapi/preview/api.intercom.io.yaml (same repository and
commit, descriptions/0/api.intercom.io.yaml), and writes
tests/data/intercom-openapi-preview-subset.json. Nothing is widened in this mode: the bulk
schemas type custom_attributes as a plain object (`--published` changes nothing then).
"""

import json
import os
import sys

import yaml

SOURCE = {
    "repository": "https://github.com/intercom/Intercom-OpenAPI",
    "path": "descriptions/2.16/api.intercom.io.yaml",
    "commit": "8889625a7b931d8649e18726e7f872ff073520fc",
    "licence": "MIT, Copyright (c) 2022 Intercom, Inc.",
}

PREVIEW_SOURCE = dict(SOURCE, path="descriptions/0/api.intercom.io.yaml")

# (path template as in the description, method): every operation the loader may call.
OPERATIONS = [
    ("/data_attributes", "get"),
    ("/data_attributes", "post"),
    ("/data_attributes/{data_attribute_id}", "put"),
    ("/companies", "get"),
    ("/companies/scroll", "get"),
    ("/companies/list", "post"),
    ("/companies/{company_id}", "put"),
    ("/contacts/search", "post"),
    ("/contacts/{contact_id}", "put"),
]

# The Preview operations the loader may call (with `Intercom-Version: Preview`).
PREVIEW_OPERATIONS = [
    ("/data_attributes", "get"),  # the probe: does the workspace answer the Preview API?
    ("/companies/bulk", "put"),
    ("/companies/bulk/{id}", "get"),
    ("/contacts/bulk", "put"),
    ("/contacts/bulk/{id}", "get"),
    ("/companies/search", "post"),
]

# The one deliberate change (JSON pointer into the output, old value, new value).
# The description types company custom attribute values as strings only, yet its own example
# right next to it ({"paid_subscriber": true, "monthly_spend": 155.5, "team_mates": 9}) and the
# live API take integers, floats and booleans, and `null` clears a value.
WIDENED_POINTER = (
    "/components/schemas/update_company_request/properties/custom_attributes/additionalProperties"
)
WIDENED_FROM = {"type": "string"}
WIDENED_TO = {
    "anyOf": [
        {"type": "string"},
        {"type": "integer"},
        {"type": "number"},
        {"type": "boolean"},
    ],
    "nullable": True,
    "description": "WIDENED by intercom-push (was {type: string}): the API takes strings, "
    "integers, floats and booleans, and null clears the value. See tests/data/README.md.",
}


def refs(node):
    """Every $ref string in node."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield v
            else:
                yield from refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs(v)


def resolve(doc, ref):
    if not ref.startswith("#/"):
        sys.exit(f"external $ref not supported: {ref}")
    node = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def set_pointer(doc, pointer, old, new):
    parts = pointer.lstrip("/").split("/")
    node = doc
    for p in parts[:-1]:
        node = node[p]
    if node[parts[-1]] != old:
        sys.exit(f"{pointer} is {node[parts[-1]]!r}, expected {old!r}: has the description changed?")
    node[parts[-1]] = new


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    args = sys.argv[1:]
    published = "--published" in args
    preview = "--preview" in args
    args = [a for a in args if a not in ("--published", "--preview")]
    unknown = [a for a in args if a.startswith("--")]
    if unknown:
        sys.exit(f"unknown option {unknown[0]} (see the docstring for the usage)")
    operations = PREVIEW_OPERATIONS if preview else OPERATIONS
    shared = os.path.join(root, "..", "shared", "intercom-openapi")
    src = args[0] if len(args) > 0 else os.path.join(
        *([shared, "preview"] if preview else [shared]), "api.intercom.io.yaml"
    )
    out = args[1] if len(args) > 1 else os.path.join(
        root,
        "tests",
        "data",
        "intercom-openapi-preview-subset.json" if preview else "intercom-openapi-subset.json",
    )
    with open(src, encoding="utf-8") as f:
        doc = yaml.safe_load(f)

    paths = {}
    for path, method in operations:
        op = doc["paths"].get(path, {}).get(method)
        if op is None:
            sys.exit(f"{method.upper()} {path} is not in {src}")
        paths.setdefault(path, {})[method] = op
        # Path-level parameters apply to every method of the path.
        if "parameters" in doc["paths"][path]:
            paths[path]["parameters"] = doc["paths"][path]["parameters"]

    components = {}
    todo = list(refs(paths))
    seen = set()
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        target = resolve(doc, ref)
        section, name = ref[2:].split("/")[1:3]
        components.setdefault(section, {})[name] = target
        todo.extend(refs(target))
    components["securitySchemes"] = doc["components"]["securitySchemes"]

    if preview:
        source = PREVIEW_SOURCE
        note = "Subset extracted by scripts/vendor-openapi.py --preview; nothing changed"
    else:
        source = SOURCE
        note = "Subset extracted by scripts/vendor-openapi.py; one schema widened: " + WIDENED_POINTER
    subset = {
        "openapi": doc["openapi"],
        "info": {
            "title": doc["info"]["title"],
            "version": doc["info"]["version"],
            "x-intercom-push-source": source,
            "x-intercom-push-note": note,
        },
        "servers": doc.get("servers", []),
        "security": doc.get("security", []),
        "paths": paths,
        "components": components,
    }
    subset = json.loads(json.dumps(subset, default=str))  # dates etc. → strings, deep copy
    if not preview:
        set_pointer(subset, WIDENED_POINTER, WIDENED_FROM, WIDENED_FROM if published else WIDENED_TO)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(subset, f, indent=1, sort_keys=True, ensure_ascii=False)
        f.write("\n")
    n_schemas = len(components.get("schemas", {}))
    print(f"wrote {out}: {len(operations)} operations, {n_schemas} schemas", file=sys.stderr)


if __name__ == "__main__":
    main()

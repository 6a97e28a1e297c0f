#!/usr/bin/env python3
"""Decode Weir's Avro single-object encoded records with fastavro, independently of Weir's Rust code.

Usage: avro_interop.py SCHEMA_DIR RECORDS_FILE

SCHEMA_DIR holds .avsc files, one named schema per file; files may reference each other's named
types by full name. RECORDS_FILE holds one record per line, hex encoded.

For every record this script checks the C3 01 marker, finds the schema whose CRC-64-AVRO
fingerprint -- computed by fastavro from its own Parsing Canonical Form -- equals the 8
little-endian bytes that follow, decodes the datum with fastavro.schemaless_reader, checks that
it used every byte, and prints one JSON line:

    {"schema": "<full name>", "fingerprint": "<16 hex digits, as a u64>", "value": {...}}

Values print as plain JSON: unions as their inner value, enums as their symbol, bytes as lists of
integers, timestamp-millis as integer milliseconds since the Unix epoch.

Exit status: 0 if every record decoded, 1 otherwise, 2 if fastavro is not installed.
Requires: pip install fastavro
"""

import datetime
import io
import json
import pathlib
import sys

try:
    import fastavro
    from fastavro.schema import fingerprint, to_parsing_canonical_form
except ImportError:
    print("fastavro is not installed: pip install fastavro", file=sys.stderr)
    sys.exit(2)

PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
NAMED = {"record", "error", "enum", "fixed"}
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def full_name(name, namespace):
    return name if "." in name or not namespace else f"{namespace}.{name}"


def namespace_of(full):
    return full.rpartition(".")[0] or None


def inline(schema, namespace, files, defined):
    """Return `schema` self-contained: each named type defined at its first use, by name after."""
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return schema
        full = full_name(schema, namespace)
        if full in defined:
            return full
        if full not in files:
            raise ValueError(f"unknown named type {full}")
        return inline(files[full], None, files, defined)
    if isinstance(schema, list):
        return [inline(branch, namespace, files, defined) for branch in schema]
    kind = schema["type"]
    if kind in NAMED:
        full = full_name(schema["name"], schema.get("namespace", namespace))
        if full in defined:
            return full
        defined.add(full)
        out = {k: v for k, v in schema.items() if k != "namespace"}
        out["name"] = full
        if kind in ("record", "error"):
            out["fields"] = [
                dict(field, type=inline(field["type"], namespace_of(full), files, defined))
                for field in schema["fields"]
            ]
        return out
    if kind == "array":
        return dict(schema, items=inline(schema["items"], namespace, files, defined))
    if kind == "map":
        return dict(schema, values=inline(schema["values"], namespace, files, defined))
    return dict(schema, type=inline(kind, namespace, files, defined))


def load_schemas(schema_dir):
    """Map each file's fingerprint (the header's 8 bytes, hex) to (full name, parsed schema)."""
    files = {}
    for path in sorted(pathlib.Path(schema_dir).glob("*.avsc")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        files[full_name(schema["name"], schema.get("namespace"))] = schema
    by_fingerprint = {}
    for name, schema in files.items():
        contained = inline(schema, None, files, set())
        header_hex = fingerprint(to_parsing_canonical_form(contained), "CRC-64-AVRO")
        by_fingerprint[header_hex] = (name, fastavro.parse_schema(contained))
    return by_fingerprint


def plain(value):
    if isinstance(value, (bytes, bytearray)):
        return list(value)
    if isinstance(value, datetime.datetime):
        return (value - EPOCH) // datetime.timedelta(milliseconds=1)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def decode(line, schemas):
    data = bytes.fromhex(line)
    if data[:2] != b"\xc3\x01":
        raise ValueError("missing C3 01 marker")
    if len(data) < 10:
        raise ValueError("shorter than the 10-byte header")
    header_hex = data[2:10].hex()
    fingerprint_u64 = f"{int.from_bytes(data[2:10], 'little'):016x}"
    if header_hex not in schemas:
        raise ValueError(f"no schema has fingerprint {fingerprint_u64}")
    name, schema = schemas[header_hex]
    datum = io.BytesIO(data[10:])
    value = fastavro.schemaless_reader(datum, schema, None)
    if datum.tell() != len(data) - 10:
        raise ValueError(f"{len(data) - 10 - datum.tell()} bytes left over after the {name} datum")
    return {"schema": name, "fingerprint": fingerprint_u64, "value": plain(value)}


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 1
    schemas = load_schemas(argv[1])
    status = 0
    lines = pathlib.Path(argv[2]).read_text(encoding="ascii").split()
    for number, line in enumerate(lines, start=1):
        try:
            print(json.dumps(decode(line, schemas), ensure_ascii=False))
        except Exception as error:  # report every bad record, then fail
            print(f"record {number}: {error}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))

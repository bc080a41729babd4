#!/usr/bin/env python3
"""Validate FHIR R4 (4.0.1) JSON resources with the `fhir.resources` 6.4.0 models.

Usage:
    validate_fhir.py FILE...     validate each file (one JSON resource per file; `-` is stdin)
    validate_fhir.py --self-check
                                 check that the installed models are R4 and that this
                                 validator rejects known-bad resources

Exits 0 when every resource is valid, 1 when any is not (each error is printed with its
file name and the element at fault), 2 on a usage or installation problem.

Strict on purpose, beyond what the pydantic models check by themselves:
  * unknown elements fail (the models forbid extra fields);
  * a JSON value of the wrong type fails even where pydantic 1 would coerce it
    (e.g. `"total": "3"`, `"priority": 5`, `"total": true`);
  * FHIR JSON rules: no `null`, no empty string, object or array;
  * codes of the required bindings of the elements this project emits must come from
    the R4 value set (the models accept any code there).
Install with tests/fhir/setup.sh.
"""

import datetime
import decimal
import json
import sys

try:
    import fhir.resources
    from fhir.resources import construct_fhir_element
except ImportError as e:  # pragma: no cover - reported to the user
    print(
        f"cannot import fhir.resources ({e}); install the validator with tests/fhir/setup.sh",
        file=sys.stderr,
    )
    sys.exit(2)

FHIR_VERSION = "4.0.1"

RESOURCE_TYPES_USED = {
    "AuditEvent", "Bundle", "CapabilityStatement", "OperationOutcome", "ServiceRequest", "Task",
}

# Required bindings (FHIR R4 4.0.1) of the coded elements the facade emits, by element path.
REQUIRED_CODES = {
    "Task.status": {
        "draft", "requested", "received", "accepted", "rejected", "ready", "cancelled",
        "in-progress", "on-hold", "failed", "completed", "entered-in-error",
    },
    "Task.intent": {
        "unknown", "proposal", "plan", "order", "original-order", "reflex-order",
        "filler-order", "instance-order", "option",
    },
    "Task.priority": {"routine", "urgent", "asap", "stat"},
    "ServiceRequest.status": {
        "draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown",
    },
    "ServiceRequest.intent": {
        "proposal", "plan", "directive", "order", "original-order", "reflex-order",
        "filler-order", "instance-order", "option",
    },
    "ServiceRequest.priority": {"routine", "urgent", "asap", "stat"},
    "Bundle.type": {
        "document", "message", "transaction", "transaction-response", "batch",
        "batch-response", "history", "searchset", "collection",
    },
    "Bundle.entry.search.mode": {"match", "include", "outcome"},
    "OperationOutcome.issue.severity": {"fatal", "error", "warning", "information"},
    "OperationOutcome.issue.code": {
        "invalid", "structure", "required", "value", "invariant", "security", "login",
        "unknown", "expired", "forbidden", "suppressed", "processing", "not-supported",
        "duplicate", "multiple-matches", "not-found", "deleted", "too-long", "code-invalid",
        "extension", "too-costly", "business-rule", "conflict", "transient", "lock-error",
        "no-store", "exception", "timeout", "incomplete", "throttled", "informational",
    },
    "AuditEvent.action": {"C", "R", "U", "D", "E"},
    "AuditEvent.outcome": {"0", "4", "8", "12"},
    "CapabilityStatement.status": {"draft", "active", "retired", "unknown"},
    "CapabilityStatement.kind": {"instance", "capability", "requirements"},
    "CapabilityStatement.fhirVersion": {FHIR_VERSION},
    "CapabilityStatement.rest.mode": {"client", "server"},
    "CapabilityStatement.rest.resource.type": RESOURCE_TYPES_USED,
    "CapabilityStatement.rest.resource.interaction.code": {
        "read", "vread", "update", "patch", "delete", "history-instance", "history-type",
        "create", "search-type",
    },
    "CapabilityStatement.rest.interaction.code": {
        "transaction", "batch", "search-system", "history-system",
    },
    "CapabilityStatement.rest.resource.versioning": {
        "no-version", "versioned", "versioned-update",
    },
    "CapabilityStatement.rest.resource.searchParam.type": {
        "number", "date", "string", "token", "reference", "composite", "quantity", "uri",
        "special",
    },
}


class Invalid(Exception):
    """A resource that is not valid R4 JSON; the message names the element."""


def check_json_rules(value, path):
    """FHIR JSON rules the models do not check: no null and nothing empty."""
    if value is None:
        raise Invalid(f"{path}: null is not allowed in FHIR JSON; leave the element out")
    if isinstance(value, str) and value == "":
        raise Invalid(f"{path}: empty string is not allowed in FHIR JSON")
    if isinstance(value, dict):
        if not value:
            raise Invalid(f"{path}: empty object is not allowed in FHIR JSON")
        for key, item in value.items():
            check_json_rules(item, f"{path}.{key}")
    if isinstance(value, list):
        if not value:
            raise Invalid(f"{path}: empty array is not allowed in FHIR JSON")
        for i, item in enumerate(value):
            check_json_rules(item, f"{path}[{i}]")


def check_types(raw, parsed, path):
    """Fail where pydantic coerced a JSON value of the wrong type into the model's type."""
    if isinstance(raw, dict):
        if not isinstance(parsed, dict):
            raise Invalid(f"{path}: an object where a {type(parsed).__name__} is expected")
        for key, item in raw.items():
            if key not in parsed:
                raise Invalid(f"{path}.{key}: dropped by the R4 model (unknown element?)")
            check_types(item, parsed[key], f"{path}.{key}")
    elif isinstance(raw, list):
        if not isinstance(parsed, list) or len(parsed) != len(raw):
            raise Invalid(f"{path}: an array where the R4 model expects a single value")
        for i, (r, p) in enumerate(zip(raw, parsed)):
            check_types(r, p, f"{path}[{i}]")
    elif isinstance(raw, bool):
        if not isinstance(parsed, bool):
            raise Invalid(f"{path}: JSON boolean {raw!r} given for a {type(parsed).__name__}")
    elif isinstance(raw, (int, float)):
        if isinstance(parsed, bool) or not isinstance(parsed, (int, float, decimal.Decimal)):
            raise Invalid(f"{path}: JSON number {raw!r} given for a {type(parsed).__name__}")
    elif isinstance(raw, str):
        ok = (str, datetime.date, datetime.time, datetime.datetime, bytes)
        if isinstance(parsed, (bool, int, float, decimal.Decimal)) or not isinstance(parsed, ok):
            raise Invalid(f"{path}: JSON string {raw!r} given for a {type(parsed).__name__}")


def check_codes(value, path):
    """Codes of required bindings must come from the R4 value set."""
    if isinstance(value, dict):
        if "resourceType" in value:
            path = value["resourceType"]
        for key, item in value.items():
            check_codes(item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            check_codes(item, path)
    elif isinstance(value, str) and path in REQUIRED_CODES:
        allowed = REQUIRED_CODES[path]
        if value not in allowed:
            raise Invalid(
                f"{path}: code {value!r} is not in the required R4 value set "
                f"({', '.join(sorted(allowed))})"
            )


def validate(data):
    """Validate one parsed JSON resource; returns `Type/id` or raises Invalid."""
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        raise Invalid("not a FHIR resource: a JSON object with `resourceType` is expected")
    rtype = data["resourceType"]
    check_json_rules(data, rtype)
    try:
        model = construct_fhir_element(rtype, data)
    except LookupError as e:
        raise Invalid(f"{rtype}: {e}") from None
    except Exception as e:  # pydantic.ValidationError and friends
        raise Invalid(f"{rtype} does not validate as FHIR R4:\n{e}") from None
    check_types(data, model.dict(by_alias=True, exclude_none=True), rtype)
    check_codes(data, rtype)
    return f"{rtype}/{data.get('id', '(no id)')}"


def self_check():
    """Prove the installed models are R4 and that bad resources are refused."""
    if fhir.resources.__fhir_version__ != FHIR_VERSION:
        print(
            f"fhir.resources {fhir.resources.__version__} models FHIR "
            f"{fhir.resources.__fhir_version__}, not {FHIR_VERSION}; reinstall with tests/fhir/setup.sh",
            file=sys.stderr,
        )
        return 2
    good = {"resourceType": "Task", "status": "requested", "intent": "order", "priority": "stat"}
    validate(good)
    bad = [
        dict(good, unknownElement=1),
        dict(good, status="bogus"),
        dict(good, priority=5),
        dict(good, authoredOn="yesterday"),
        dict(good, owner="Practitioner/x"),
        dict(good, note=[]),
        {"resourceType": "Bundle", "type": "searchset", "total": "3"},
        # `bodyStructure` is R5 only; an R4 model must refuse it.
        {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
         "subject": {"reference": "Patient/p"}, "bodyStructure": {"reference": "BodyStructure/b"}},
    ]
    for resource in bad:
        try:
            validate(resource)
        except Invalid:
            continue
        print(f"self-check: the validator accepted a bad resource: {resource}", file=sys.stderr)
        return 2
    print(f"self-check ok: fhir.resources {fhir.resources.__version__}, FHIR {FHIR_VERSION}")
    return 0


def main(argv):
    if argv == ["--self-check"]:
        return self_check()
    if not argv or any(a.startswith("--") for a in argv):
        print(__doc__, file=sys.stderr)
        return 2
    if fhir.resources.__fhir_version__ != FHIR_VERSION:
        print(
            f"fhir.resources models FHIR {fhir.resources.__fhir_version__}, not {FHIR_VERSION}; "
            "reinstall with tests/fhir/setup.sh",
            file=sys.stderr,
        )
        return 2
    failures = 0
    for name in argv:
        try:
            text = sys.stdin.read() if name == "-" else open(name, encoding="utf-8").read()
            what = validate(json.loads(text))
            print(f"valid R4: {name}: {what}")
        except (OSError, ValueError, Invalid) as e:
            failures += 1
            print(f"INVALID: {name}: {e}", file=sys.stderr)
    print(f"{len(argv) - failures} valid, {failures} invalid")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

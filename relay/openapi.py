"""The relay's OpenAPI 3.1 description, built from the limits and enums the relay enforces.
``python -m relay.openapi --write`` writes docs/relay-openapi.json; a test fails when that
file is stale."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from eidcore import fields, phoneproof
from eidcore.status import Hint, Status
from relay import requests as limits
from relay import v6
from relay.requests import STATUS, ErrorCode
from relay.rules import CALL_INITIATORS

OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "relay-openapi.json"

_B64 = "^[A-Za-z0-9+/]*={0,2}$"
_REF = {"type": "string", "minLength": 1, "maxLength": limits.MAX_REF}
_SECRET = {"type": "string", "minLength": 1, "maxLength": limits.MAX_TOKEN}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _content(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(name)}}


def _post(summary: str, body: str, ok: str, *, party: bool) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": {"description": "OK", "content": _content(ok)}}
    for code, status in STATUS.items():
        if code is ErrorCode.UNAUTHORIZED and not party:
            continue
        responses.setdefault(
            str(status), {"description": f"{code.value} (and others)", "content": _content("Error")}
        )
    operation: dict[str, Any] = {
        "summary": summary,
        "requestBody": {"required": True, "content": _content(body)},
        "responses": responses,
    }
    if party:
        operation["security"] = [{"partyCertificate": []}]
    else:
        operation["security"] = []
    return operation


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "eid-agent order relay",
            "version": "6.0",  # the API's version (BankID's /rp/v6.0), not the software's
            "description": "See docs/relay-api.md. /rp/v6.0: BankID's relying-party API "
            "v6.0, the party known by its TLS client certificate. /agent/v1: the person's "
            "agent, with the autostart token and then the order's agent secret.",
        },
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "partyCertificate": {"type": "mutualTLS"},
            },
            "schemas": _schemas(),
        },
    }


def _paths() -> dict[str, Any]:
    operations = [
        (f"{v6.PATH}/auth", "Start an identification", "AuthRequest", "Started", True),
        (f"{v6.PATH}/sign", "Start a signature", "SignRequest", "Started", True),
        (
            f"{v6.PATH}/phone/auth",
            "Start an identification with a person on the phone",
            "PhoneAuthRequest",
            "PhoneStarted",
            True,
        ),
        (
            f"{v6.PATH}/phone/sign",
            "Start a signature with a person on the phone",
            "PhoneSignRequest",
            "PhoneStarted",
            True,
        ),
        (f"{v6.PATH}/collect", "Poll an order", "OrderRef", "Collect", True),
        (f"{v6.PATH}/cancel", "Cancel an order", "OrderRef", "Empty", True),
        (
            "/agent/v1/order",
            "Fetch an order with its autostart token",
            "TokenRequest",
            "AgentOrder",
            False,
        ),
        (
            "/agent/v1/phone/challenge",
            "A challenge to prove which BankIDs the agent holds",
            "Empty",
            "Challenge",
            False,
        ),
        (
            "/agent/v1/phone/orders",
            "The phone orders waiting for the people the proofs name",
            "PhoneProofs",
            "PhoneOrders",
            False,
        ),
        ("/agent/v1/progress", "Report progress", "Progress", "Reported", False),
        ("/agent/v1/complete", "Post the result", "Complete", "Reported", False),
        ("/agent/v1/fail", "Report a failure", "Fail", "Reported", False),
        ("/agent/v1/status", "Whether the order is still wanted", "AgentStatus", "Collect", False),
    ]
    return {
        path: {"post": _post(summary, body, ok, party=party)}
        for path, summary, body, ok, party in operations
    }


def _schemas() -> dict[str, Any]:
    b64 = {"type": "string", "pattern": _B64}
    start = {
        "endUserIp": {
            "type": "string",
            "maxLength": 45,
            "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}],
            "description": "the person's IP address as your server saw it",
        },
        "returnUrl": {
            "type": "string",
            "maxLength": limits.MAX_RETURN_URL,
            "pattern": "^https?://",
            "description": "registered for your party; https (http only on "
            "loopback, for development)",
        },
        "userVisibleData": {**b64, "maxLength": fields.MAX_USER_VISIBLE_DATA},
        "userVisibleDataFormat": {"enum": sorted(fields.VISIBLE_FORMATS)},
    }
    hints = {"enum": [h.value for h in Hint]}
    text = {"type": "string", "maxLength": 256}
    requirement: dict[str, Any] = {
        "pinCode": {"type": "boolean"},
        "mrtd": {"type": "boolean"},
        "cardReader": {"enum": ["class1", "class2"]},
        "certificatePolicies": {
            "type": "array",
            "maxItems": 16,
            "items": {"type": "string", "maxLength": 128},
            "description": "policy OIDs of the relay's issuers (eidcore/policies.py)",
        },
    }
    v6_start = {
        **start,
        "returnRisk": {"type": "boolean"},
        "web": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"referringDomain": text, "userAgent": text, "deviceIdentifier": text},
        },
        "app": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "appIdentifier": text,
                "deviceOS": text,
                "deviceModelName": text,
                "deviceIdentifier": text,
            },
        },
        "requirement": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                **requirement,
                "personalNumber": {"type": "string", "pattern": "^[0-9]{12}$"},
            },
        },
    }
    phone = {
        **{k: v for k, v in v6_start.items() if k in ("userVisibleData", "userVisibleDataFormat")},
        "personalNumber": {"type": "string", "pattern": "^[0-9]{12}$"},
        "callInitiator": {"enum": sorted(CALL_INITIATORS)},
        "userNonVisibleData": {**b64, "maxLength": fields.MAX_USER_NON_VISIBLE_DATA},
        "requirement": {"type": "object", "additionalProperties": False, "properties": requirement},
    }
    b64_list = {"type": "array", "minItems": 1, "maxItems": 4, "items": b64}
    return {
        "PhoneAuthRequest": {
            "type": "object",
            "additionalProperties": False,
            "properties": phone,
            "required": ["personalNumber", "callInitiator"],
        },
        "PhoneSignRequest": {
            "type": "object",
            "additionalProperties": False,
            "properties": phone,
            "required": ["personalNumber", "callInitiator", "userVisibleData"],
        },
        "PhoneStarted": {
            "type": "object",
            "required": ["orderRef"],
            "properties": {"orderRef": _REF},
        },
        "Challenge": {
            "type": "object",
            "required": ["challenge", "expiresAt"],
            "properties": {"challenge": _SECRET, "expiresAt": {"type": "string"}},
        },
        "PhoneProofs": {
            "type": "object",
            "additionalProperties": False,
            "required": ["challenge", "proofs"],
            "properties": {
                "challenge": _SECRET,
                "proofs": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": phoneproof.MAX_PROOFS,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["certificateChain", "signature"],
                        "properties": {"certificateChain": b64_list, "signature": b64},
                        "description": "the identification key's ES256 signature (r‖s) "
                        "over eidcore.phoneproof.proof_bytes(relay origin, challenge)",
                    },
                },
            },
        },
        "PhoneOrders": {
            "type": "object",
            "required": ["orders"],
            "properties": {"orders": {"type": "array", "items": {"type": "object"}}},
        },
        "AuthRequest": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                **v6_start,
                "userNonVisibleData": {**b64, "maxLength": fields.MAX_USER_NON_VISIBLE_DATA},
            },
            "required": ["endUserIp"],
        },
        "SignRequest": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                **v6_start,
                "userNonVisibleData": {**b64, "maxLength": fields.MAX_USER_NON_VISIBLE_DATA},
            },
            "required": ["endUserIp", "userVisibleData"],
        },
        "Started": {
            "type": "object",
            "required": ["orderRef", "autoStartToken", "qrStartToken", "qrStartSecret"],
            "properties": {
                "orderRef": _REF,
                "autoStartToken": _SECRET,
                "qrStartToken": {"type": "string", "format": "uuid"},
                "qrStartSecret": {"type": "string", "format": "uuid"},
            },
        },
        "OrderRef": {
            "type": "object",
            "additionalProperties": False,
            "required": ["orderRef"],
            "properties": {"orderRef": _REF},
        },
        "Collect": {
            "type": "object",
            "required": ["orderRef", "status"],
            "properties": {
                "orderRef": _REF,
                "status": {"enum": [s.value for s in Status]},
                "hintCode": hints,
                "completionData": {"$ref": "#/components/schemas/CompletionData"},
            },
        },
        "CompletionData": {
            "description": "BankID's completionData: the person read from the verified "
            "certificate, the agent as the relay saw it, and the XML signature "
            "(base64; docs/relay-api.md).",
            "type": "object",
            "required": ["user", "device", "bankIdIssueDate", "stepUp", "signature"],
            "properties": {
                "user": {
                    "type": "object",
                    "required": ["personalNumber", "name", "givenName", "surname"],
                },
                "device": {"type": "object", "required": ["ipAddress", "uhi"]},
                "bankIdIssueDate": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}Z$"},
                "stepUp": {"type": "object", "required": ["mrtd"]},
                "signature": {"type": "string"},
                "ocspResponse": {"type": "string"},
            },
        },
        "Empty": {"type": "object", "maxProperties": 0},
        "TokenRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["autoStartToken"],
            "properties": {"autoStartToken": _SECRET},
        },
        "AgentOrder": {
            "type": "object",
            "required": [
                "orderRef",
                "agentSecret",
                "type",
                "relay",
                "party",
                "nonce",
                "expiresAt",
                "userVisibleDataFormat",
            ],
            "properties": {
                "orderRef": _REF,
                "agentSecret": _SECRET,
                "type": {"enum": ["auth", "sign"]},
                "relay": {"type": "string"},
                "party": {"type": "object", "required": ["id", "name"]},
                "nonce": {"type": "string"},
                "expiresAt": {"type": "string"},
                "userVisibleData": b64,
                "userNonVisibleData": b64,
                "userVisibleDataFormat": {"type": "string"},
                "returnUrl": {"type": "string"},
                "requirement": {"type": "object"},
            },
        },
        "Progress": {
            "type": "object",
            "additionalProperties": False,
            "required": ["orderRef", "agentSecret", "hintCode"],
            "properties": {
                "orderRef": _REF,
                "agentSecret": _SECRET,
                "hintCode": {"const": Hint.USER_SIGN.value},
            },
        },
        "Complete": {
            "type": "object",
            "additionalProperties": False,
            "required": ["orderRef", "agentSecret", "completionData"],
            "properties": {
                "orderRef": _REF,
                "agentSecret": _SECRET,
                "completionData": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["signature", "uhi"],
                    "properties": {
                        "signature": {
                            "type": "string",
                            "minLength": 1,
                            "description": "the "
                            "XML signature the agent built and signed, in base64",
                        },
                        "uhi": {"type": "string", "pattern": "^[A-Za-z0-9+/=_-]{1,64}$"},
                    },
                },
            },
        },
        "Fail": {
            "type": "object",
            "additionalProperties": False,
            "required": ["orderRef", "agentSecret", "hintCode"],
            "properties": {
                "orderRef": _REF,
                "agentSecret": _SECRET,
                "hintCode": {
                    "enum": [
                        Hint.USER_CANCEL.value,
                        Hint.CERTIFICATE_ERR.value,
                        Hint.START_FAILED.value,
                        Hint.UPDATE_REQUIRED.value,
                    ]
                },
            },
        },
        "AgentStatus": {
            "type": "object",
            "additionalProperties": False,
            "required": ["orderRef", "agentSecret"],
            "properties": {"orderRef": _REF, "agentSecret": _SECRET},
        },
        "Reported": {
            "type": "object",
            "required": ["orderRef", "status"],
            "properties": {"orderRef": _REF, "status": {"enum": [s.value for s in Status]}},
        },
        "Error": {
            "type": "object",
            "required": ["errorCode", "details"],
            "properties": {
                "errorCode": {"enum": [c.value for c in ErrorCode]},
                "details": {"type": "string"},
            },
        },
    }


def rendered() -> str:
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    if "--write" in sys.argv:
        OUTPUT.write_text(rendered(), "utf-8")
    elif OUTPUT.read_text("utf-8") != rendered():
        print("docs/relay-openapi.json is stale: run python -m relay.openapi --write")
        raise SystemExit(1)

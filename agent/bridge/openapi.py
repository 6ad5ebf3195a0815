"""The bridge's OpenAPI 3.1 description, built from the same limits and enums the bridge
enforces. ``python -m agent.bridge.openapi --write`` writes docs/openapi.json; a test
fails when that file is stale."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from agent import __version__
from agent.bridge import limits
from agent.bridge.errors import STATUS, ErrorCode
from agent.bridge.requests import VISIBLE_FORMATS
from agent.bridge.security import DEFAULT_PORT
from agent.credentials import CredentialKind
from agent.orders import Hint, Status
from agent.updater import StateName

OUTPUT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"

_B64 = "^[A-Za-z0-9+/]*={0,2}$"
_NONCE = {
    "type": "string",
    "description": f"base64 or base64url of {limits.NONCE_MIN_BYTES}-{limits.NONCE_MAX_BYTES} "
    "random bytes from your server",
    "minLength": 40,
    "maxLength": 200,
}
_PNR = {"type": "string", "pattern": "^[0-9]{12}$", "description": "12 digits, YYYYMMDDNNNC"}
_KINDS = {
    "type": "array",
    "items": {"enum": [k.value for k in CredentialKind]},
    "minItems": 1,
    "maxItems": len(CredentialKind),
    "uniqueItems": True,
}
_VISIBLE = {
    "type": "string",
    "pattern": _B64,
    "maxLength": limits.MAX_USER_VISIBLE_DATA,
    "description": "base64 of UTF-8 text shown to the person verbatim",
}


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json_body(ref: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def _post(summary: str, body: str, ok_status: str, ok_schema: str) -> dict[str, Any]:
    responses: dict[str, Any] = {
        ok_status: {
            "description": "OK",
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{ok_schema}"}}
            },
        }
    }
    for code, status in STATUS.items():
        responses.setdefault(str(status), _error_response(f"{code.value} (and others)"))
    responses.setdefault("415", _error_response("invalidParameters: not application/json"))
    responses.setdefault("405", _error_response("invalidParameters: method"))
    return {
        "summary": summary,
        "parameters": [
            {"name": "X-Eid-Agent", "in": "header", "required": True, "schema": {"const": "1"}},
            {
                "name": "Origin",
                "in": "header",
                "required": True,
                "schema": {"type": "string", "maxLength": limits.MAX_ORIGIN_LENGTH},
            },
        ],
        "requestBody": _json_body(body),
        "responses": responses,
    }


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "eid-agent localhost bridge",
            "version": __version__,
            "description": "See docs/bridge-api.md. Served on http://127.0.0.1:"
            f"{DEFAULT_PORT} and http://[::1]:{DEFAULT_PORT} only.",
        },
        "servers": [{"url": f"http://127.0.0.1:{DEFAULT_PORT}"}],
        "paths": {
            "/v1/info": {
                "get": {
                    "summary": "Version and update state; nothing about the person",
                    "responses": {
                        "200": {
                            "description": "OK",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Info"}
                                }
                            },
                        },
                        "421": _error_response("forbiddenHost"),
                        "403": _error_response("forbiddenUser"),
                    },
                }
            },
            "/v1/auth": {"post": _post("Start an identification", "AuthRequest", "201", "Started")},
            "/v1/sign": {"post": _post("Start a signature", "SignRequest", "201", "Started")},
            "/v1/collect": {"post": _post("Poll an order", "OrderRef", "200", "Collect")},
            "/v1/cancel": {"post": _post("Cancel an order", "OrderRef", "200", "Empty")},
        },
        "components": {"schemas": _schemas()},
    }


def _schemas() -> dict[str, Any]:
    b64 = {"type": "string", "pattern": _B64}
    return {
        "AuthRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["nonce"],
            "properties": {
                "nonce": _NONCE,
                "personalNumber": _PNR,
                "tokenKinds": _KINDS,
                "userVisibleData": _VISIBLE,
                "userVisibleDataFormat": {"enum": sorted(VISIBLE_FORMATS)},
            },
        },
        "SignRequest": {
            "type": "object",
            "additionalProperties": False,
            "required": ["nonce", "userVisibleData"],
            "properties": {
                "nonce": _NONCE,
                "personalNumber": _PNR,
                "tokenKinds": _KINDS,
                "userVisibleData": _VISIBLE,
                "userVisibleDataFormat": {"enum": sorted(VISIBLE_FORMATS)},
                "userNonVisibleData": {
                    **b64,
                    "maxLength": limits.MAX_USER_NON_VISIBLE_DATA,
                    "description": "base64; signed (as a hash), never shown",
                },
            },
        },
        "OrderRef": {
            "type": "object",
            "additionalProperties": False,
            "required": ["orderRef"],
            "properties": {
                "orderRef": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": limits.MAX_ORDER_REF_LENGTH,
                }
            },
        },
        "Started": {
            "type": "object",
            "required": ["orderRef"],
            "properties": {"orderRef": {"type": "string"}},
        },
        "Empty": {"type": "object", "maxProperties": 0},
        "Collect": {
            "type": "object",
            "required": ["orderRef", "status"],
            "properties": {
                "orderRef": {"type": "string"},
                "status": {"enum": [s.value for s in Status]},
                "hintCode": {"enum": [h.value for h in Hint]},
                "completionData": {"$ref": "#/components/schemas/CompletionData"},
            },
        },
        "CompletionData": {
            "type": "object",
            "required": [
                "user",
                "token",
                "signedData",
                "signature",
                "algorithm",
                "certificateChain",
            ],
            "properties": {
                "user": {
                    "type": "object",
                    "required": ["personalNumber", "name", "givenName", "surname"],
                    "properties": {
                        k: {"type": "string"}
                        for k in ("personalNumber", "name", "givenName", "surname")
                    },
                },
                "token": {
                    "type": "object",
                    "required": ["kind"],
                    "properties": {"kind": {"enum": [k.value for k in CredentialKind]}},
                },
                "signedData": {
                    **b64,
                    "description": "base64 of the signed bytes (docs/signed-data.md)",
                },
                "signature": {**b64, "description": "base64 of ES256 r||s (64 bytes)"},
                "algorithm": {"const": "ES256"},
                "certificateChain": {
                    "type": "array",
                    "items": b64,
                    "minItems": 1,
                    "description": "base64 DER, leaf first",
                },
            },
        },
        "Info": {
            "type": "object",
            "required": ["version", "apiVersion", "updateRequired", "updateState"],
            "properties": {
                "version": {"type": "string"},
                "apiVersion": {"type": "integer"},
                "updateRequired": {"type": "boolean"},
                "updateState": {"enum": [str(name) for name in StateName]},
            },
        },
        "Error": {
            "type": "object",
            "required": ["errorCode", "details"],
            "properties": {
                "errorCode": {"enum": [e.value for e in ErrorCode]},
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
        print("docs/openapi.json is stale: run python -m agent.bridge.openapi --write")
        raise SystemExit(1)

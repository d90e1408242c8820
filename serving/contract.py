"""The HTTP contract as published and as answered: the OpenAPI document and the 4xx error bodies.

BentoML 1.4 generates both, with gaps this module closes (see tests/test_reliability.py and
tests/test_serving.py's generated client):

* its document says ``openapi: 3.0.2`` but holds pydantic 2's JSON Schema 2020-12 (``type: null``
  branches, numeric ``exclusiveMinimum``), which is OpenAPI 3.1: it is declared 3.1.0;
* it replaces a top-level ``anyOf`` of a request or response by its first branch, so optional
  fields (``/explain``'s ``product``, ``points``) are published non-nullable: the model's own
  property schemas are put back;
* it declares 400/404/500 for every operation, and not 401/403/413/503 (so a generated client has
  no typed error for them), and names bodies ``score__Input`` or ``ScoreResponseIODescriptor``:
  each operation gets the statuses it answers with one ``Error`` body, and readable names;
* a payload that fails pydantic validation gets BentoML's ``{"error", "detail": [...]}`` (and its
  other 4xx a one-element list), not the service's ``{"error", "field"}``:
  :class:`ContractMiddleware` rewrites those bodies and serves the corrected document;
* it reads a form body (``curl -d`` without a JSON content type) as form fields and answers
  "field required": the middleware answers 415 saying to send JSON.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.responses import JSONResponse, Response

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]

#: BentoML's components are keyed by model name: the same template keeps our ``$ref``s valid.
REF_TEMPLATE = "#/components/schemas/{model}"
DOCUMENT_PATH = "/docs.json"
#: The one error body, every status: ``field`` names where the problem is (absent for 401/403/5xx).
ERROR_SCHEMA = {
    "type": "object",
    "title": "Error",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "title": "Message", "description": "What is wrong."},
        "field": {
            "type": "string",
            "title": "Field",
            "description": "Where: the payload path, e.g. customer_ids[1] or rows[0].segment.",
        },
    },
}
#: BentoML's tag for service APIs ("Service APIs": a client module ``service_ap_is``), and ours.
BENTOML_TAG = "Service APIs"
SCORING_TAG = {"name": "scoring", "description": "Scores, reason codes and target lists."}
#: What each error status means.
ERROR_STATUSES = {
    400: "Malformed payload or a request that cannot be answered; `field` says where.",
    401: "No API key, or a key the settings do not know.",
    403: "The key's role may not call this endpoint.",
    404: "The customer is not in the online store.",
    413: "More items than serving.max_batch; the error says the limit.",
    415: "A form body (curl -d without a JSON content type): send Content-Type: application/json.",
    500: "A bug: nothing internal is shown; the server log has the details.",
    503: "Models or feature store unavailable (or a reload failed); the error says which and why.",
}
#: The statuses each endpoint can answer besides 200 (every endpoint is protected: 401/403).
ENDPOINT_ERRORS = {
    "score": (400, 401, 403, 413, 415, 500, 503),
    "explain": (400, 401, 403, 404, 415, 500, 503),
    "score_features": (400, 401, 403, 413, 415, 500, 503),
    "targets": (400, 401, 403, 415, 500, 503),
    "reload": (400, 401, 403, 415, 500, 503),
}
#: Bodies BentoML reads as forms, field by field: a JSON text sent as one (``curl -d`` without
#: ``-H 'Content-Type: application/json'``) became a form with the whole text as one key, and the
#: caller was told that every field was missing.
FORM_TYPES = (b"application/x-www-form-urlencoded", b"multipart/form-data")


# --- the published document --------------------------------------------------------------------


def _restore_optional_properties(schema: dict[str, Any], model: Any) -> None:
    """Put back the top-level properties BentoML flattened from ``anyOf`` to its first branch."""
    original = model.model_json_schema(ref_template=REF_TEMPLATE, mode="serialization")
    properties = schema.get("properties", {})
    for name, prop in original.get("properties", {}).items():
        if name in properties and "anyOf" in prop:
            properties[name] = prop


def _component(schemas: dict[str, Any], name: str, schema: dict[str, Any]) -> dict[str, str]:
    """Store ``schema`` as component ``name``; the ``$ref`` that points at it."""
    schemas[name] = {**schema, "title": name}
    return {"$ref": REF_TEMPLATE.format(model=name)}


def _referenced(document: dict[str, Any]) -> set[str]:
    """Names of the components some ``$ref`` reaches from the paths (transitively)."""
    schemas = document.get("components", {}).get("schemas", {})
    found: set[str] = set()
    pending = [document["paths"]]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            name = ref.rsplit("/", 1)[-1] if ref.startswith("#/components/schemas/") else None
            if name and name not in found:
                found.add(name)
                pending.append(schemas.get(name, {}))
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return found


def published_document(service: Any) -> dict[str, Any]:
    """The OpenAPI document of a BentoML ``service``, self-consistent (3.1) and faithful to what
    the service answers: request and response bodies as components with readable names
    (``ScoreRequest``, ``ScoreResponse``, ...: what generated clients call their classes), every
    error status of :data:`ENDPOINT_ERRORS` with the :data:`ERROR_SCHEMA` body, and operation
    ids named after the endpoints."""
    from crmscore import __version__

    document = service.openapi_spec.asdict()
    document["openapi"] = "3.1.0"
    document["info"] = {
        "title": "crmscore",
        "version": __version__,
        "description": " ".join((service.inner.__doc__ or "").split()),
    }
    document["tags"] = [
        SCORING_TAG,
        *(t for t in document.get("tags", []) if t["name"] != BENTOML_TAG),
    ]
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    error = _component(schemas, "Error", ERROR_SCHEMA)
    for path_item in document["paths"].values():
        for operation in path_item.values():
            method = service.apis.get(operation.get("x-bentoml-name", ""))
            if method is None:
                continue
            endpoint = operation["x-bentoml-name"]
            operation["operationId"] = endpoint
            operation["tags"] = [SCORING_TAG["name"]]
            words = "".join(word.capitalize() for word in endpoint.split("_"))
            for media in operation.get("requestBody", {}).get("content", {}).values():
                _restore_optional_properties(media["schema"], method.input_spec)
                media["schema"] = _component(schemas, f"{words}Request", media["schema"])
            responses = {}
            for status, response in operation["responses"].items():
                if str(status) == "200":  # BentoML keys statuses by int until serialised
                    for media in response.get("content", {}).values():
                        _restore_optional_properties(media["schema"], method.output_spec)
                        name = method.output_spec.__name__.removesuffix("IODescriptor")
                        media["schema"] = _component(schemas, name, media["schema"])
                    responses["200"] = response
            for status in ENDPOINT_ERRORS.get(endpoint, (400, 500)):
                responses[str(status)] = {
                    "description": ERROR_STATUSES[status],
                    "content": {"application/json": {"schema": error}},
                }
            operation["responses"] = responses
    used = _referenced(document)
    document["components"]["schemas"] = {k: v for k, v in schemas.items() if k in used}
    return document


# --- error bodies ------------------------------------------------------------------------------


def field_path(location: list | tuple) -> str:
    """A pydantic error location as the service names fields: ``rows[0].customer_id``."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or "body"


def error_body(body: bytes) -> bytes:
    """``body`` as ``{"error", "field"}``: BentoML's validation 400 (``detail`` = pydantic errors)
    names the first failing field; its one-element list becomes that element; anything else
    (already ours, or not JSON) is returned unchanged."""
    try:
        payload = json.loads(body)
    except ValueError:
        return body
    if isinstance(payload, list) and len(payload) == 1 and isinstance(payload[0], dict):
        payload = {"field": "body", **payload[0]}
    elif isinstance(payload, dict) and isinstance(payload.get("detail"), list):
        errors = [e for e in payload["detail"] if isinstance(e, dict)]
        if not errors:
            return body
        first = errors[0]
        field = field_path(first.get("loc", ()))
        message = first.get("msg", "invalid value")
        if first.get("type") == "extra_forbidden":
            message = f"not a field of this endpoint (its fields: {DOCUMENT_PATH})"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        payload = {"error": f"{field}: {message}{more}", "field": field}
    else:
        return body
    return json.dumps(payload).encode()


def _rewriting_errors(send: Send) -> Send:
    """``send`` that holds a 4xx JSON response until its body is complete, then rewrites it with
    :func:`error_body` (other responses stream through untouched)."""
    held: dict[str, Any] = {}

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = dict(message.get("headers", []))
            if 400 <= message["status"] < 500 and b"json" in headers.get(b"content-type", b""):
                held["start"], held["body"] = message, b""
                return
        elif message["type"] == "http.response.body" and "start" in held:
            held["body"] += message.get("body", b"")
            if message.get("more_body", False):
                return
            body = error_body(held["body"])
            start = held.pop("start")
            headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await send(message)

    return wrapped


class ContractMiddleware:
    """Serves :func:`published_document` at ``/docs.json``, gives every 4xx the service's
    ``{"error", "field"}`` body, whichever layer (BentoML or the service) answered, and answers
    a form body on an API route with 415 (:data:`FORM_TYPES`)."""

    def __init__(self, app, service: Any) -> None:
        self.app = app
        self.service = service
        self._document: bytes | None = None
        self._api_paths = {api.route for api in service.apis.values()}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("path") == DOCUMENT_PATH and scope.get("method") == "GET":
            if self._document is None:  # generated once: the API cannot change while serving
                self._document = json.dumps(published_document(self.service)).encode()
            await Response(self._document, media_type="application/json")(scope, receive, send)
            return
        if scope.get("method") == "POST" and scope.get("path") in self._api_paths:
            kind = dict(scope.get("headers", [])).get(b"content-type", b"")
            if kind.split(b";")[0].strip().lower() in FORM_TYPES:
                body = {
                    "error": f"the body is a form ({kind.decode('latin-1')}); send JSON with "
                    "Content-Type: application/json",
                    "field": "body",
                }
                await JSONResponse(body, status_code=415)(scope, receive, send)
                return
        await self.app(scope, receive, _rewriting_errors(send))

"""``APIStatusError.error_model``: the body of a non-2xx answer as the wire model ``ApiError``."""

from __future__ import annotations

import httpx

from sessionmood_client import ApiError, APIStatusError, BadRequestError, RateLimitError


def _error(cls: type[APIStatusError], status: int, body: object) -> APIStatusError:
    response = httpx.Response(status, request=httpx.Request("POST", "http://sm.test/v1/x"))
    return cls("failed", response=response, body=body)


def test_the_servers_error_body_parses_into_the_wire_model() -> None:
    body = {
        "error": "Invalid event type(s)",
        "invalid": ["page_visit"],
        "valid_types": ["click"],
        "example": {"events": []},  # a field the model does not name
    }
    model = _error(BadRequestError, 400, body).error_model
    assert isinstance(model, ApiError)
    assert model.error == "Invalid event type(s)"
    assert model.invalid == ["page_visit"]
    assert model.extra_fields() == {"example": {"events": []}}


def test_the_quota_fields_are_typed_on_the_model_too() -> None:
    body = {"error": "Rate limit exceeded", "plan": "starter", "limit": 5000, "reset_at": "x"}
    err = _error(RateLimitError, 429, body)
    assert err.error_model is not None
    assert (err.error_model.plan, err.error_model.limit) == ("starter", 5000)


def test_a_body_of_another_shape_has_no_model() -> None:
    assert _error(APIStatusError, 502, "<html>Bad gateway</html>").error_model is None
    assert _error(APIStatusError, 400, {"message": "no error field"}).error_model is None
    assert _error(APIStatusError, 400, {"error": 42}).error_model is None
    assert _error(APIStatusError, 400, ["error"]).error_model is None

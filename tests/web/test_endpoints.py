"""The endpoint registry: one declaration validates requests and documents them."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import pytest
from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.responses import Response

from web.endpoints import (
    MAX_PATH_INT,
    AnyEndpoint,
    Call,
    Endpoint,
    NoBody,
    QueryModel,
    Reply,
    build_routes,
    respond,
)
from web.errors import EXCEPTION_HANDLERS
from web.openapi30 import to_openapi30
from web.spec import build_spec, openapi_route


class Pet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    age: int | None = Field(default=None, ge=0)


class PetQuery(QueryModel):
    limit: int = Field(10, ge=1, le=100)
    tame: bool | None = None


class PetList(BaseModel):
    pets: list[Pet]
    limit: int


async def add_pet(call: Call[Pet, PetQuery]) -> Response:
    """Add a pet."""
    return respond(call.body, 201)


async def list_pets(call: Call[NoBody, PetQuery]) -> Response:
    return respond(PetList(pets=[], limit=call.query.limit))


async def get_pet(call: Call[NoBody, Any]) -> Response:
    return respond(Pet(name=f"pet{call.path['pet_id']}"))


async def count_pets(call: Call[NoBody, Any]) -> Response:
    return respond(PetList(pets=[], limit=0))


async def owner_pets(call: Call[NoBody, Any]) -> Response:
    return respond(PetList(pets=[Pet(name=call.path["owner"])], limit=1))


OwnerName = Annotated[str, Field(min_length=2, max_length=5)]

ENDPOINTS: list[AnyEndpoint] = [
    Endpoint(
        "POST",
        "/pets",
        add_pet,
        body=Pet,
        query=PetQuery,
        summary="Add",
        responses={201: Reply("Added", Pet)},
    ),
    Endpoint(
        "GET",
        "/pets",
        list_pets,
        query=PetQuery,
        summary="List",
        responses={200: Reply("Pets", PetList)},
    ),
    Endpoint(
        "GET",
        "/pets/{pet_id:int}",
        get_pet,
        summary="One",
        responses={200: Reply("A pet", Pet), 404: Reply("No such pet")},
    ),
    Endpoint(
        "GET",
        "/pets/count",
        count_pets,
        summary="Count",
        responses={200: Reply("No pets", PetList)},
    ),
    Endpoint(
        "GET",
        "/owners/{owner}/pets",
        owner_pets,
        summary="An owner's pets",
        path_params={"owner": OwnerName},
        responses={200: Reply("Pets", PetList)},
    ),
]


@pytest.fixture
def client() -> httpx.AsyncClient:
    spec = build_spec(ENDPOINTS, title="pets", version="1")
    app = Starlette(
        routes=[*build_routes(ENDPOINTS), openapi_route(spec)],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_a_valid_body_and_query_reach_the_handler_as_models(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/pets?limit=5", json={"name": "rex", "age": 3})
    assert r.status_code == 201
    assert r.json() == {"name": "rex", "age": 3}
    r = await client.get("/pets", params={"limit": "7", "tame": "true"})
    assert r.json() == {"pets": [], "limit": 7}


async def test_an_invalid_body_and_query_are_refused_together_naming_each_field(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/pets?limit=0", json={"name": "", "colour": "red"})
    assert r.status_code == 422
    locs = {tuple(issue["loc"]) for issue in r.json()["detail"]}
    assert locs == {("query", "limit"), ("body", "name"), ("body", "colour")}


async def test_a_body_that_is_not_json_is_a_422_with_a_message(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post(
        "/pets", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    [issue] = r.json()["detail"]
    assert issue["loc"] == ["body"] and issue["type"] == "json_invalid"
    assert issue["msg"]


async def test_an_empty_body_counts_as_an_empty_object(client: httpx.AsyncClient) -> None:
    r = await client.post("/pets")
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "name"]


async def test_unknown_paths_and_methods_answer_json_errors(client: httpx.AsyncClient) -> None:
    r = await client.get("/nowhere")
    assert (r.status_code, r.json()) == (404, {"detail": "Not Found"})
    r = await client.delete("/pets")
    assert r.status_code == 405 and r.json() == {"detail": "Method Not Allowed"}
    # one route per path: Allow names every method of the path
    assert sorted(r.headers["allow"].split(", ")) == ["GET", "HEAD", "POST"]


async def test_head_is_answered_by_the_get_endpoint(client: httpx.AsyncClient) -> None:
    r = await client.head("/pets")
    assert r.status_code == 200 and r.content == b""


async def test_the_spec_describes_bodies_queries_paths_and_responses(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["openapi"] == "3.0.3"
    post = spec["paths"]["/pets"]["post"]
    assert post["operationId"] == "add_pet" and post["description"] == "Add a pet."
    assert post["requestBody"]["required"] is True
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Pet"
    }
    assert set(post["responses"]) == {"201", "422"}
    params = {p["name"]: p for p in spec["paths"]["/pets"]["get"]["parameters"]}
    assert params["limit"]["schema"]["maximum"] == 100 and not params["limit"]["required"]
    assert params["tame"]["schema"]["type"] == "boolean"
    assert "nullable" not in params["tame"]["schema"]
    [path_param] = spec["paths"]["/pets/{pet_id}"]["get"]["parameters"]
    assert path_param["in"] == "path" and path_param["schema"]["type"] == "integer"
    age = spec["components"]["schemas"]["Pet"]["properties"]["age"]
    assert age["nullable"] is True and age["type"] == "integer"
    assert spec["components"]["schemas"]["PetList"]["properties"]["pets"]["items"] == {
        "$ref": "#/components/schemas/Pet"
    }


async def test_path_parameters_are_validated_and_documented_from_one_declaration(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get(f"/pets/{MAX_PATH_INT}")).status_code == 200
    assert (await client.get("/owners/ann/pets")).json()["pets"] == [{"name": "ann", "age": None}]
    for path, loc, kind in (
        (f"/pets/{MAX_PATH_INT + 1}", ["path", "pet_id"], "less_than_equal"),
        ("/owners/annabel/pets", ["path", "owner"], "string_too_long"),
        ("/owners/a/pets", ["path", "owner"], "string_too_short"),
    ):
        r = await client.get(path)
        assert r.status_code == 422, (path, r.text)
        [issue] = r.json()["detail"]
        assert (issue["loc"], issue["type"]) == (loc, kind) and issue["msg"]
    spec = (await client.get("/openapi.json")).json()
    [pet_id] = spec["paths"]["/pets/{pet_id}"]["get"]["parameters"]
    assert pet_id["schema"] == {"type": "integer", "minimum": 0, "maximum": MAX_PATH_INT}
    [owner] = spec["paths"]["/owners/{owner}/pets"]["get"]["parameters"]
    # the endpoint's bounds on top of the convertor's (a segment has no "/")
    assert owner["schema"] == {
        "type": "string",
        "minLength": 2,
        "maxLength": 5,
        "pattern": "^[^/]+$",
    }


async def test_an_int_segment_that_is_no_number_is_a_422_and_shadows_no_route(
    client: httpx.AsyncClient,
) -> None:
    for segment, kind in (
        ("abc", "int_parsing"),
        ("-1", "greater_than_equal"),
        ("1.5", "int_parsing"),
    ):
        r = await client.get(f"/pets/{segment}")
        assert r.status_code == 422, (segment, r.text)
        [issue] = r.json()["detail"]
        assert (issue["loc"], issue["type"]) == (["path", "pet_id"], kind) and issue["msg"]
    # declared after /pets/{pet_id:int}, still reached: the loose routes come after all
    assert (await client.get("/pets/count")).json() == {"pets": [], "limit": 0}
    r = await client.get("/pets/7")
    assert r.status_code == 200 and r.json()["name"] == "pet7"  # the handler gets the int
    r = await client.delete("/pets/abc")
    assert r.status_code == 405
    spec = (await client.get("/openapi.json")).json()
    assert set(spec["paths"]) == {"/pets", "/pets/{pet_id}", "/pets/count", "/owners/{owner}/pets"}


async def test_unknown_query_parameters_are_ignored_and_known_ones_still_checked(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/pets", params={"limit": "3", "_": "1700000000", "colour": "red"})
    assert r.status_code == 200 and r.json() == {"pets": [], "limit": 3}
    r = await client.get("/pets", params={"limit": "0", "_": "1"})
    assert r.status_code == 422
    assert [i["loc"] for i in r.json()["detail"]] == [["query", "limit"]]


def test_path_bounds_must_name_a_parameter_of_the_path_and_fit_its_type() -> None:
    for bounds, error in (({"owner": OwnerName}, ValueError), ({"pet_id": OwnerName}, TypeError)):
        with pytest.raises(error, match="path parameter"):
            Endpoint(
                "GET", "/pets/{pet_id:int}", get_pet, summary="x", responses={}, path_params=bounds
            )


def test_two_models_with_one_name_are_refused() -> None:
    class Other(BaseModel):
        x: int

    Other.__name__ = "Pet"

    async def other(call: Call[Other, Any]) -> Response:
        return respond(None, 204)

    endpoints: list[AnyEndpoint] = [
        *ENDPOINTS,
        Endpoint("PUT", "/pets", other, body=Other, summary="x", responses={204: Reply("ok")}),
    ]
    with pytest.raises(ValueError, match="named 'Pet'"):
        build_spec(endpoints, title="pets", version="1")


def test_a_route_declared_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        build_spec([*ENDPOINTS, ENDPOINTS[0]], title="pets", version="1")


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"anyOf": [{"type": "string"}, {"type": "null"}]}, {"type": "string", "nullable": True}),
        (
            {"anyOf": [{"$ref": "#/x"}, {"type": "null"}]},
            {"allOf": [{"$ref": "#/x"}], "nullable": True},
        ),
        ({"const": "a"}, {"enum": ["a"]}),
        (
            {"type": "number", "exclusiveMinimum": 0},
            {"type": "number", "minimum": 0, "exclusiveMinimum": True},
        ),
        (
            {"type": "object", "properties": {"const": {"type": "string", "examples": ["x"]}}},
            {"type": "object", "properties": {"const": {"type": "string", "example": "x"}}},
        ),
        ({"default": {"const": 1}}, {"default": {"const": 1}}),
    ],
)
def test_json_schema_is_rewritten_where_openapi_30_differs(
    schema: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert to_openapi30(schema) == expected

"""Recipe routes under /api/os/recipes: import a BeerXML 1.0 or BeerJSON 1.0 file for a unit, review and edit
the program it made, start it on its unit, delete the draft.

Transport only: the roles (viewer to read; operator to import, edit, start, delete), the node rule, the checks
and the audit are the recipe service's (`bevforge/recipes/service.py`). Bodies are JSON like every other
route (the CSRF rule refuses other bodies): a file is sent as its text in `text`. Every answer is a draft as
`messages.recipe_draft` builds it; a start answers the draft and the unit's program frame.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from bevforge.api.deps import actor_for_request, runtime_of
from bevforge.api.errors import JSONResponse
from bevforge.api.security import enforce, requires
from bevforge.recipes import guess_format

router = APIRouter(prefix="/api/os/recipes", default_response_class=JSONResponse,
                   dependencies=[Depends(enforce)], tags=["recipes"])

DraftId = Annotated[int, Path(ge=1, le=2**62, description="the draft's id")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImportIn(_Body):
    unit: str = Field(min_length=1, max_length=32, description="the unit the program is made for (programs.units)")
    text: str = Field(min_length=1, description="the recipe file's text")
    format: Literal["beerxml", "beerjson"] | None = Field(
        default=None, description="beerxml or beerjson; default: from the filename's ending, else the text")
    filename: str | None = Field(default=None, max_length=255, description="the uploaded file's name")


class ProgramIn(_Body):
    name: str = Field(min_length=1, max_length=200, description="the program's name")
    unit: str | None = Field(default=None, description="the draft's unit, as the draft shows it (a draft's unit "
                             "does not change: import the file again for another unit)")
    steps: list[dict[str, Any]] = Field(description="the steps, each as a config.yaml template step "
                                        "(type, name and the keys its type takes)")


@router.get("", summary="Recipe drafts of the units the caller may see, newest first",
            openapi_extra=requires("viewer"))
async def list_drafts(request: Request) -> list[dict[str, Any]]:
    return await runtime_of(request).recipes.drafts(actor_for_request(request))


@router.post("/import", summary="Import a BeerXML 1.0 or BeerJSON 1.0 recipe for a unit: the draft with its "
             "generated program for review (a bad file: 422 naming the element, nothing stored)",
             openapi_extra=requires("operator"))
async def import_recipe(request: Request, body: ImportIn) -> dict[str, Any]:
    fmt = body.format or guess_format(body.filename, body.text)
    return await runtime_of(request).recipes.import_recipe(actor_for_request(request), fmt, body.text, body.unit)


@router.get("/{draft_id}", summary="One recipe draft with its program", openapi_extra=requires("viewer"))
async def get_draft(request: Request, draft_id: DraftId) -> dict[str, Any]:
    return await runtime_of(request).recipes.draft(actor_for_request(request), draft_id)


async def _edit(request: Request, draft_id: int, body: ProgramIn) -> dict[str, Any]:
    return await runtime_of(request).recipes.edit(actor_for_request(request), draft_id, body.model_dump())


@router.put("/{draft_id}", summary="Replace the draft's program with the reviewed one (checked as a config "
            "template is; 409 while it runs)", openapi_extra=requires("operator"))
async def put_program(request: Request, draft_id: DraftId, body: ProgramIn) -> dict[str, Any]:
    return await _edit(request, draft_id, body)


@router.patch("/{draft_id}", summary="The same as PUT: the reviewed program replaces the draft's",
              openapi_extra=requires("operator"))
async def patch_program(request: Request, draft_id: DraftId, body: ProgramIn) -> dict[str, Any]:
    return await _edit(request, draft_id, body)


@router.post("/{draft_id}/start", summary="Start the draft's program on its unit (409 if the unit is running or "
             "paused on a program)", openapi_extra=requires("operator"))
async def start(request: Request, draft_id: DraftId) -> dict[str, Any]:
    return await runtime_of(request).recipes.start(actor_for_request(request), draft_id)


@router.delete("/{draft_id}", summary="Delete a draft (409 while its program runs)",
               openapi_extra=requires("operator"))
async def delete_draft(request: Request, draft_id: DraftId) -> dict[str, Any]:
    await runtime_of(request).recipes.delete(actor_for_request(request), draft_id)
    return {"id": draft_id, "deleted": True}

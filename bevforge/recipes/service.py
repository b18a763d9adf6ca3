"""Recipe drafts: import a recipe file for a unit, review and edit the program it made, start it.

The operator's path (REST `/api/os/recipes`, the /recipes screen): import → a draft (the file as it
came, what was read from it, the program it made for the chosen unit) → review and edit the program
→ start it on its unit. An import is read and its program made and checked whole before anything is
stored: a bad file stores nothing. An edited program is checked by the same rules as a config.yaml
template (`generate.from_json`). A started draft runs as an inline program of the program service
under the id `recipe:<draft id>`; its stored row names that id, so after a restart the program
service finds the program again in the drafts table (safe resume as for any program).

Rules here: viewer to read, operator to import, edit, start or delete (`permissions`); a draft is seen
only by those who may see its unit (as the unit's program); the program of a draft that is running or
paused on its unit cannot be edited or the draft deleted (409). Every action is audited.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bevforge import messages, permissions
from bevforge.errors import NOT_ALLOWED_NOW, TOO_LARGE, UNKNOWN_RECIPE, Conflict, Forbidden, Invalid, NotFound
from bevforge.programs.service import ACTIVE, RECIPE_PREFIX
from bevforge.recipes import FORMATS, read
from bevforge.recipes.generate import from_json, program, to_json
from bevforge.store import RecipeDraftRow, recipe_rows

if TYPE_CHECKING:
    from bevforge.audit import AuditLog
    from bevforge.clock import Clock
    from bevforge.config import PlantConfig, ProgramTemplate
    from bevforge.domain import Actor
    from bevforge.programs.service import ProgramService, UnitRun
    from bevforge.store.writer import Database

MAX_SOURCE_CHARS = 1_000_000  # a recipe file is a few kB; a megabyte is not a recipe


class RecipeService:
    def __init__(self, config: PlantConfig, db: Database, audit: AuditLog | None, programs: ProgramService,
                 clock: Clock) -> None:
        self.config = config
        self.db = db
        self.audit = audit
        self.programs = programs
        self.clock = clock

    # -- reading ---------------------------------------------------------------------------------------

    def _view(self, row: RecipeDraftRow) -> dict[str, Any]:
        assert row.id is not None
        return messages.recipe_draft(row.id, row.name, row.format, row.unit_id, row.recipe, row.program,
                                     row.created_by, row.created_at, row.edited_by, row.edited_at,
                                     self._running(row) is not None)

    def _running(self, row: RecipeDraftRow) -> UnitRun | None:
        """The unit run that has this draft's program running or paused, if any."""
        run = self.programs.units.get(row.unit_id)
        if run is not None and run.state in ACTIVE and run.template is not None and \
                run.template.id == f"{RECIPE_PREFIX}{row.id}":
            return run
        return None

    async def _row(self, actor: Actor | None, draft_id: Any) -> RecipeDraftRow:
        row = await self.db.read(recipe_rows.get, self.db, draft_id) if isinstance(draft_id, int) else None
        if row is None or row.unit_id not in self.programs.units or \
                not permissions.may_see_nodes(actor, self.programs.units[row.unit_id].nodes):
            raise NotFound(f"no recipe draft {draft_id!r}", code=UNKNOWN_RECIPE, field="id")
        return row

    async def drafts(self, actor: Actor | None) -> list[dict[str, Any]]:
        """Every draft of a unit the caller may see, newest first."""
        rows = await self.db.read(recipe_rows.list_all, self.db)
        return [self._view(r) for r in rows if r.unit_id in self.programs.units
                and permissions.may_see_nodes(actor, self.programs.units[r.unit_id].nodes)]

    async def draft(self, actor: Actor | None, draft_id: Any) -> dict[str, Any]:
        return self._view(await self._row(actor, draft_id))

    async def source(self, actor: Actor | None, draft_id: Any) -> tuple[str, str]:
        """The file as it was imported: (format, text)."""
        row = await self._row(actor, draft_id)
        return row.format, row.source

    # -- what operators do -------------------------------------------------------------------------------

    async def import_recipe(self, actor: Actor, fmt: Any, text: Any, unit_id: Any) -> dict[str, Any]:
        """Read the file, make the unit's program from it, check it; only then store the draft."""
        permissions.require_role(actor, permissions.OPERATOR)
        run = self.programs.find(actor, unit_id)  # the unit exists and is the caller's to see (404 `unit` otherwise)
        if not all(permissions.may_see_node(actor, node) for node in run.nodes):
            raise Forbidden(f"importing a recipe for {run.unit.name} needs every one of its nodes "
                            f"({', '.join(sorted(run.nodes))})", field="unit")
        if fmt not in FORMATS:
            raise Invalid(f"format must be one of {', '.join(FORMATS)}", field="format")
        if not isinstance(text, str) or not text.strip():
            raise Invalid("the recipe file is empty", field="text")
        if len(text) > MAX_SOURCE_CHARS:
            raise Invalid(f"a recipe file is at most {MAX_SOURCE_CHARS} characters", code=TOO_LARGE, field="text")
        recipe = read(fmt, text)
        made = program(recipe, self.config, unit_id)
        from_json(to_json(made), self.config, unit_id)  # the generated program passes the template checks too
        row = RecipeDraftRow(name=recipe.name[:200], format=fmt, source=text, recipe=recipe.summary(),
                             program=to_json(made), unit_id=unit_id, created_by=actor.user,
                             created_at=self.clock.now())
        row = await self.db.write(recipe_rows.insert, self.db, row)
        self._audit(actor, "recipe.import", row, None, f"{fmt}: {recipe.name}")
        return self._view(row)

    async def edit(self, actor: Actor, draft_id: Any, body: Any) -> dict[str, Any]:
        """Replace the draft's program with the reviewed one (name and steps), checked as a template is."""
        row = await self._changeable(actor, draft_id)
        if isinstance(body, dict) and body.get("unit") not in (None, row.unit_id):
            raise Invalid(f"a draft's unit does not change ({row.unit_id!r}): import the file again for another",
                          field="unit")
        checked = from_json(body, self.config, row.unit_id)
        program_json = to_json(checked)
        updated = await self.db.write(recipe_rows.update_program, self.db, row.id, program_json, actor.user,
                                      self.clock.now())
        if updated is None:
            raise NotFound(f"no recipe draft {draft_id!r}", code=UNKNOWN_RECIPE, field="id")
        self._audit(actor, "recipe.edit", updated, len(row.program.get("steps", [])) if row.program else None,
                    len(program_json["steps"]))
        return self._view(updated)

    async def _changeable(self, actor: Actor, draft_id: Any) -> Any:
        """The draft an operator with every node of its unit may edit or delete: not while its program runs."""
        permissions.require_role(actor, permissions.OPERATOR)
        row = await self._row(actor, draft_id)
        self._for_operator(actor, row)
        if self._running(row) is not None:
            raise Conflict("this draft's program is running on its unit: abort it first", code=NOT_ALLOWED_NOW,
                           field="id")
        return row

    async def start(self, actor: Actor, draft_id: Any) -> dict[str, Any]:
        """Start the draft's program on its unit (409 when the unit is running or paused on another)."""
        permissions.require_role(actor, permissions.OPERATOR)
        row = await self._row(actor, draft_id)
        template = self._template(row)
        frame = await self.programs.start_program(actor, row.unit_id, template.id, inline=template)
        self._audit(actor, "recipe.start", row, None, template.id)
        return {"draft": self._view(row), "program": frame}

    async def delete(self, actor: Actor, draft_id: Any) -> None:
        row = await self._changeable(actor, draft_id)
        await self.db.write(recipe_rows.delete, self.db, row.id)
        self._audit(actor, "recipe.delete", row, row.name, None)

    def _template(self, row: RecipeDraftRow) -> ProgramTemplate:
        """The stored program as a template with the id it runs under (checked again: the plant may have
        changed since the draft was saved)."""
        template = from_json(row.program, self.config, row.unit_id)
        return template.model_copy(update={"id": f"{RECIPE_PREFIX}{row.id}"})

    def _for_operator(self, actor: Actor, row: RecipeDraftRow) -> None:
        """Editing a unit's draft takes what running the unit's program takes (every node of the unit)."""
        run = self.programs.units[row.unit_id]
        if not all(permissions.may_see_node(actor, node) for node in run.nodes):
            raise Forbidden(f"changing {run.unit.name}'s recipe drafts needs every one of its nodes "
                            f"({', '.join(sorted(run.nodes))})", field="id")

    def _audit(self, actor: Actor, action: str, row: RecipeDraftRow, old: Any, new: Any) -> None:
        if self.audit is not None:
            self.audit.record(actor, action, target=f"{RECIPE_PREFIX}{row.id}", old=old, new=new,
                              detail=f"{row.name} for {row.unit_id}")


__all__ = ["MAX_SOURCE_CHARS", "RecipeService"]

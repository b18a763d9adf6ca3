"""The longest chain of imports inside bevforge/: how many modules deep the core's imports go.

    python scripts/import_depth.py [--all]

Counts the modules on the longest path of the import graph that grimp (installed with
import-linter) builds for `bevforge`, leaving out imports under `if TYPE_CHECKING:` (annotations,
never executed) unless `--all` is given. A deep chain means a change at the bottom (`domain`) ripples
up through every module on it, and a start-up that imports one module imports them all; issue 12
measured 14 (app → … → domain) before the alarm, command and store packages were split.
The import-linter layers contract keeps the graph free of cycles, so the longest path is well defined.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import grimp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's bevforge, not an installed one


def longest_chain(package: str = "bevforge", *, with_type_checking: bool = False) -> list[str]:
    """The modules of one longest import chain inside `package`, importer first."""
    graph = grimp.build_graph(package, exclude_type_checking_imports=not with_type_checking, cache_dir=None)
    modules = sorted(graph.modules)
    imports = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}

    walking: set[str] = set()

    @functools.cache
    def deepest(module: str) -> tuple[str, ...]:
        if module in walking:  # the layers contract forbids cycles; a longest path would be meaningless
            raise ValueError(f"import cycle through {module}")
        walking.add(module)
        best: tuple[str, ...] = (module,)
        for imported in imports[module]:
            chain = deepest(imported)
            if len(chain) + 1 > len(best):
                best = (module, *chain)
        walking.discard(module)
        return best

    return list(max((deepest(m) for m in modules), key=len))


def main(argv: list[str]) -> int:
    chain = longest_chain(with_type_checking="--all" in argv)
    print(f"{len(chain)} modules: " + " -> ".join(chain))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

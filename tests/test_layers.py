"""The layers hold by construction: what sits above the core reaches it through its public names only.

docs/architecture.md: the core is the package root (`paynotify._*`, re-exported by `paynotify`);
the capabilities above it (`publishers/`, `ops/`, `contrib/`, `recovery/`, `reconciliation/`,
`webhooks.py`) and the command (`cli/`) import `paynotify` and their own package's modules, never a
private module of the core, so the core can be reorganised without breaking them (a third party's
plugin has the same seam).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "paynotify"
ABOVE_THE_CORE = ["publishers", "ops", "contrib", "recovery", "reconciliation", "webhooks.py", "cli"]
"""`cli` too, the top of the house: the command is built on the same public names as any caller's
code (`paynotify`, `paynotify.ops`, `paynotify.publishers`, ...)."""
SIDEWAYS_ALLOWED = {"webhooks.py": {"paynotify.publishers._webhook_sign"}}
"""The one private module of another capability a layer may take: `paynotify.webhooks` is the
receiving half of the publishers' webhooks, and checks their signatures with the very code that
makes them (`Signer`, `verify_with`), which the publishers do not export."""


def _modules(layer: str) -> list[Path]:
    where = PACKAGE / layer
    if where.is_file():
        return [where]
    return sorted(where.rglob("*.py"))


def private_core_imports(source: str, where: str, own_package: str) -> list[str]:
    """The `paynotify._x` modules (and other capabilities' private modules) that `source` imports;
    its own package's private modules are its own."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module.split(".")[0] == "paynotify":  # `from paynotify[.x] import _y` reaches one too
                private = [a.name for a in node.names if a.name[:1] == "_" and a.name[:2] != "__"]
                names += [f"{node.module}.{name}" for name in private]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "paynotify" and len(parts) > 1 and parts[1].startswith("_"):
                found.append(f"{where}:{line}: {name}")
            elif own_package and name.startswith("paynotify.") and not name.startswith(own_package):
                # another capability's private module: sideways, not down
                tail = name.split(".")
                if len(tail) > 2 and tail[2].startswith("_"):
                    found.append(f"{where}:{line}: {name}")
    return found


@pytest.mark.parametrize("layer", [layer for layer in ABOVE_THE_CORE if (PACKAGE / layer).exists()])
def test_above_the_core_only_public_names_are_imported(layer: str) -> None:
    own = f"paynotify.{layer.removesuffix('.py')}"
    allowed = SIDEWAYS_ALLOWED.get(layer, set())
    offending = [
        hit
        for path in _modules(layer)
        for hit in private_core_imports(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE)), own)
        if hit.rsplit(": ", 1)[1] not in allowed
    ]
    assert offending == [], "imports of private core modules:\n" + "\n".join(offending)


def test_the_walk_sees_every_kind_of_forbidden_import() -> None:
    # The test above cannot pass vacuously: a private core module, another capability's private
    # module, in a function body too; its own package's private modules and the facade are allowed.
    source = (
        "from paynotify._errors import ConfigurationError\n"
        "import paynotify.ops._auth\n"
        "def later():\n    from paynotify.cli._main import main\n"
        "from paynotify import Notifier\n"
        "from paynotify.publishers._base import Publisher\n"
        "from paynotify import Options, _adapter, __version__\n"
        "from paynotify.adapters import TOO_LARGE\n"
        "from paynotify.ops import _console, console_app\n"
        "from paynotify.publishers import _webhook\n"
    )
    hits = private_core_imports(source, "probe.py", "paynotify.publishers")
    assert [hit.rsplit(": ", 1)[1] for hit in hits] == [
        "paynotify._errors",
        "paynotify.ops._auth",
        "paynotify._adapter",
        "paynotify.ops._console",  # a private module named in `from package import _x`
        "paynotify.cli._main",  # the walk reaches function bodies after the module's own lines
    ]

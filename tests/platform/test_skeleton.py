"""Tree-wide checks of the one service skeleton (docs/engineering.md): one `Clock`, one CIF normaliser, one client
of auth's internal token endpoints, no SQL in handlers, short bootstraps, real names instead of `H`/`D`/`E` aliases,
pure domain modules, no tracker references in code, and build/test tooling kept out of the runtime code.

Each check has an allow-list of today's offenders while the services are being moved onto the skeleton. A list may
only shrink: a check fails on an offender that is not listed, and also on a listed one that is already fixed (remove
it from the list then). The goal is every list empty.

The ANAF emulator (emulator/) is left out of the `Clock` and CIF checks on purpose: it is its own program, a stand-in
for ANAF that imports nothing of the platform's runtime library. Its clock is the time source the platform follows
(it serves `/__admin/clock`), and its CIF rules are ANAF's, which it must keep on its own so that it can disagree
with the platform where ANAF would. It is still held to the tracker-reference rule.
"""
from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CODE_ROOTS = ("services", "libs", "tools", "tests")  # the platform's own code, tests included
SKIP_PARTS = {"__pycache__", ".venv", "node_modules"}


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def python_files(*roots: str) -> Iterator[Path]:
    for root in roots:
        for path in sorted((ROOT / root).rglob("*.py")):
            rel = _rel(path)
            if SKIP_PARTS.intersection(path.parts) or ".egg-info" in rel:
                continue
            if "/migrations/versions/" in rel:  # frozen by design: migrations are never edited
                continue
            yield path


@cache
def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def service_packages() -> list[Path]:
    return sorted(p for p in (ROOT / "services").glob("*/spvhub_*") if p.is_dir())


def assert_only_shrinks(check: str, found: set[str], allowed: set[str]) -> None:
    new = sorted(found - allowed)
    fixed = sorted(allowed - found)
    problems = []
    if new:
        problems.append(f"{check}: new offenders (fix them; the allow-list only shrinks):\n  " + "\n  ".join(new))
    if fixed:
        problems.append(f"{check}: fixed, remove from the allow-list in {_rel(Path(__file__))}:\n  "
                        + "\n  ".join(fixed))
    assert not problems, "\n".join(problems)


# --- one Clock -----------------------------------------------------------------------------------

THE_CLOCK = "libs/common/spvhub_common/clock.py::Clock"
ALLOWED_CLOCKS: set[str] = set()


def test_one_clock_protocol_in_the_tree() -> None:
    found = {f"{_rel(p)}::{n.name}" for p in python_files(*CODE_ROOTS) for n in ast.walk(tree(p))
             if isinstance(n, ast.ClassDef) and n.name == "Clock"}
    assert THE_CLOCK in found
    assert_only_shrinks("class Clock outside spvhub_common.clock", found - {THE_CLOCK}, ALLOWED_CLOCKS)


# --- one CIF normaliser --------------------------------------------------------------------------

THE_NORMALISER = "libs/common/spvhub_common/ids.py::normalize_cif"
CIF_NAME = re.compile(r"cif|cui|tax_?id", re.I)
# Today's other CIF normalisers: a `normalize_cif`, or a function named for CIFs that strips `RO` itself (a test
# function feeding "RO ..." inputs is not one).
ALLOWED_NORMALISERS: set[str] = set()


def _strips_ro(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.strip().upper() == "RO"
               for n in ast.walk(fn))


def test_one_cif_normaliser_in_the_tree() -> None:
    found: set[str] = set()
    for path in python_files(*CODE_ROOTS):
        for node in ast.walk(tree(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                    node.name == "normalize_cif" or (CIF_NAME.search(node.name) and _strips_ro(node)
                                                     and not node.name.startswith("test_"))):
                found.add(f"{_rel(path)}::{node.name}")
        for node in tree(path).body:  # a module-level `normalize_cif = ...` is a second one too
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "normalize_cif"
                                                    for t in node.targets):
                found.add(f"{_rel(path)}::normalize_cif")
    assert THE_NORMALISER in found
    found.discard(THE_NORMALISER)
    found = {f for f in found if not f.startswith("libs/common/spvhub_common/ids.py::")}
    assert_only_shrinks("CIF normaliser outside spvhub_common.ids", found, ALLOWED_NORMALISERS)


# --- no SQL in handlers ----------------------------------------------------------------------------

ALLOWED_SQL_IN_HANDLERS: set[str] = set()


def handler_modules() -> Iterator[Path]:
    for pkg in service_packages():
        if (pkg / "handlers.py").exists():
            yield pkg / "handlers.py"
        yield from sorted((pkg / "handlers").rglob("*.py")) if (pkg / "handlers").is_dir() else ()


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_sqlalchemy_import_in_handlers() -> None:
    found = {_rel(p) for p in handler_modules() if any(m.split(".")[0] == "sqlalchemy" for m in _imports(p))}
    assert_only_shrinks("sqlalchemy imported by a handlers module (SQL lives in adapters/)", found,
                        ALLOWED_SQL_IN_HANDLERS)


# --- short bootstraps ------------------------------------------------------------------------------

MAX_BUILD_LINES = 60
ALLOWED_LONG_BUILDS: set[str] = set()


def test_every_bootstrap_build_is_under_60_lines() -> None:
    seen, found = 0, set()
    for pkg in service_packages():
        path = pkg / "bootstrap.py"
        if not path.exists():
            continue
        for node in tree(path).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "build":
                seen += 1
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                lines = (node.end_lineno or node.lineno) - start + 1
                if lines >= MAX_BUILD_LINES:
                    found.add(f"{_rel(path)}::build ({lines} lines)")
    assert seen >= 7  # auth, portfolio, invitations, efactura, etransport, notifier, webhooks
    assert_only_shrinks(f"bootstrap build() of {MAX_BUILD_LINES} lines or more", found, ALLOWED_LONG_BUILDS)


# --- real names, not H / D / E -------------------------------------------------------------------

ALIASES = {"H", "D", "E"}
ALLOWED_ALIASES: set[str] = set()


def test_no_single_letter_module_aliases() -> None:
    found: set[str] = set()
    for path in python_files(*CODE_ROOTS):
        for node in ast.walk(tree(path)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.update(f"{_rel(path)}: import ... as {a.asname}" for a in node.names if a.asname in ALIASES)
        for node in tree(path).body:  # `D = Annotated[Deps, ...]`, `H = handlers`
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, ast.AnnAssign) else [])
            found.update(f"{_rel(path)}: {t.id} = ..." for t in targets if isinstance(t, ast.Name) and t.id in ALIASES)
    assert_only_shrinks("module-level H/D/E alias (use the real name)", found, ALLOWED_ALIASES)


# --- pure domain modules ---------------------------------------------------------------------------

IMPURE = {"sqlalchemy", "httpx", "fastapi", "starlette", "asyncpg", "aiokafka", "faststream", "minio"}
ALLOWED_IMPURE_DOMAINS: set[str] = set()


def test_domain_modules_do_no_io() -> None:
    found = {f"{_rel(p)}: {m}" for pkg in service_packages() for p in [pkg / "domain.py"] if p.exists()
             for m in _imports(p) if m.split(".")[0] in IMPURE}
    assert_only_shrinks("domain.py importing an I/O library", found, ALLOWED_IMPURE_DOMAINS)


# --- no tracker references in code -----------------------------------------------------------------

TRACKER_REF = re.compile(r"\b(?:issue|issues|ticket)\s*#?\s*\d+|(?<![\w&/#'\"])#\d{1,4}\b", re.I)
ALLOWED_TRACKER_REFS: set[str] = set()


def test_no_tracker_references_in_code() -> None:
    """Code and comments say why, not which ticket asked (the tracker is not part of the code)."""
    found = {_rel(p) for p in python_files("services", "libs", "tools", "emulator")
             if TRACKER_REF.search(p.read_text(encoding="utf-8"))}
    assert_only_shrinks('tracker reference ("issue 10", "#17") in code', found, ALLOWED_TRACKER_REFS)


def test_the_tracker_pattern() -> None:
    for text in ("# issue 10: submissions", "see Issue #7", "fixed in #17", "ticket 3"):
        assert TRACKER_REF.search(text), text
    for text in ("color: '#000'", "page=#", "issues found", "x = a#1"):
        assert not TRACKER_REF.search(text), text


# --- one client of auth's internal token endpoints --------------------------------------------------

THE_TOKEN_CLIENT = "libs/common/spvhub_common/tokens.py"
TOKEN_ENDPOINT = re.compile(r"/internal/(?:connections|companies)\b|access-token")
# Runtime code that calls auth's token endpoints itself instead of through spvhub_common.tokens (auth, which
# serves them, is not a client).
ALLOWED_TOKEN_CLIENTS: set[str] = set()


def _docstrings(module: ast.Module) -> set[int]:
    nodes = [module, *(n for n in ast.walk(module)
                       if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)))]
    return {id(n.body[0].value) for n in nodes if n.body and isinstance(n.body[0], ast.Expr)
            and isinstance(n.body[0].value, ast.Constant) and isinstance(n.body[0].value.value, str)}


def test_one_client_of_auths_token_endpoints() -> None:
    runtime = [p for p in python_files("libs/common/spvhub_common", "libs/einvoice")] + [
        p for pkg in service_packages() if pkg.name != "spvhub_auth" for p in python_files(_rel(pkg))]
    found: set[str] = set()
    for path in runtime:
        docs = _docstrings(tree(path))
        if any(isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs
               and TOKEN_ENDPOINT.search(n.value) for n in ast.walk(tree(path))):
            found.add(_rel(path))
    assert THE_TOKEN_CLIENT in found
    found.discard(THE_TOKEN_CLIENT)
    assert_only_shrinks("auth's token endpoint called outside spvhub_common.tokens (use InternalTokenClient)",
                        found, ALLOWED_TOKEN_CLIENTS)


def test_the_token_endpoint_pattern() -> None:
    for text in ("/internal/connections/", "/internal/companies/", "/access-token", "{cid}/access-token"):
        assert TOKEN_ENDPOINT.search(text), text
    for text in ("/api/connections", "access_token", "/internal/account-links/"):
        assert not TOKEN_ENDPOINT.search(text), text


# --- tooling out of the runtime code -------------------------------------------------------------

ALLOWED_DEVTOOLS_IMPORTERS: set[str] = set()


def test_runtime_code_never_imports_devtools() -> None:
    runtime = [p for p in python_files("libs/common/spvhub_common", "libs/einvoice")] + [
        p for pkg in service_packages() for p in python_files(_rel(pkg))]
    found = {_rel(p) for p in runtime if any(m.split(".")[0] == "spvhub_devtools" for m in _imports(p))}
    assert_only_shrinks("runtime code importing spvhub_devtools", found, ALLOWED_DEVTOOLS_IMPORTERS)


@pytest.mark.parametrize("module", ["contracts", "devmail", "gateway_conf", "testing", "testtokens"])
def test_tooling_lives_in_devtools(module: str) -> None:
    assert (ROOT / "libs/devtools/spvhub_devtools" / f"{module}.py").exists()
    assert not (ROOT / "libs/common/spvhub_common" / f"{module}.py").exists()


def test_an_allow_list_only_shrinks() -> None:
    assert_only_shrinks("same", {"a"}, {"a"})
    with pytest.raises(AssertionError, match="new offenders"):
        assert_only_shrinks("grew", {"a", "b"}, {"a"})
    with pytest.raises(AssertionError, match="fixed, remove"):
        assert_only_shrinks("shrank", set(), {"a"})

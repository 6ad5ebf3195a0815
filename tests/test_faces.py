"""Faces that are real: outside one of the agent's packages, production code reaches it
only through a face — the package's ``__init__`` or one of its sub-packages', or a
module a face names in its ``__all__`` — and ``tests/test_exports.py`` pins each face's
``__all__``. A module behind a face can change without
anyone outside noticing; a name added to a face is a decision.

The release side is excused by name: it installs and publishes without the agent's
runtime, so it imports the updater's install layout, policy and errors modules directly
(its own import contract in pyproject.toml names which)."""

from __future__ import annotations

import functools
import importlib

import grimp
import pytest

PRODUCTION = ("agent", "eidcore", "issuer", "relay", "rp", "demo", "installer")
RELEASE_SIDE = {
    ("installer", "agent.updater.install"),
    ("installer", "agent.updater.policy"),
    ("installer", "agent.updater.errors"),
    ("installer", "agent.updater.rollout"),
}


@functools.cache
def _graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PRODUCTION, cache_dir=None)


def _packages() -> list[str]:
    graph = _graph()
    return sorted(m for m in graph.find_children("agent") if graph.find_children(m))


def _named_by_its_face(module: str) -> bool:
    """A module its package's face lists in ``__all__`` (``agent.credentials.fileformat``:
    the format the issuer writes) is part of that face."""
    face, _, name = module.rpartition(".")
    return name in getattr(importlib.import_module(face), "__all__", ())


@pytest.mark.parametrize("package", _packages())
def test_outside_users_import_through_a_face(package: str) -> None:
    graph = _graph()
    inside = {package} | graph.find_descendants(package)
    wrong = []
    for module in sorted(inside):
        if graph.find_children(module) or _named_by_its_face(module):
            continue
        for importer in sorted(graph.find_modules_that_directly_import(module)):
            if importer in inside:
                continue
            if (importer.split(".")[0], module) in RELEASE_SIDE:
                continue
            wrong.append(f"{importer} -> {module}")
    assert wrong == []


def test_the_rule_sees_the_packages() -> None:
    assert {"agent.credentials", "agent.orders", "agent.ui", "agent.updater"} <= set(_packages())

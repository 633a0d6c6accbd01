"""Which item fields a grader reads, and which dataset lines lack one.

    fields_read(grader)                  # -> {"reference_answer": "exact", "label": "python"}
    missing_fields(grader, examples)     # -> [(example, "item.reference_answer"), ...]

Template graders name their fields exactly (`{{ item.a.b }}`). A python grader's reads are found
in its source: `item["a"]` and `item.get("a")` on the grade function's second parameter (reads
through `.get` have a default, so a line without them is not an error). A multi grader reads
what its sub-graders read.
"""

from __future__ import annotations

import ast
from typing import Any

from ..dataset import Example
from .template import TemplateError, _lookup


def _python_reads(source: str, function: str) -> dict[tuple[str, ...], str]:
    """{(field,): "python" | "python-optional"} from item[...] / item.get(...) in `function`."""
    out: dict[tuple[str, ...], str] = {}
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return out
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function:
            args = node.args.posonlyargs + node.args.args
            if len(args) < 2:
                return out
            item = args[1].arg
            for n in ast.walk(node):
                if (
                    isinstance(n, ast.Subscript)
                    and isinstance(n.value, ast.Name)
                    and n.value.id == item
                    and isinstance(n.slice, ast.Constant)
                    and isinstance(n.slice.value, str)
                ):
                    out[(n.slice.value,)] = "python"
                elif (
                    isinstance(n, ast.Call)
                    and isinstance(n.func, ast.Attribute)
                    and n.func.attr == "get"
                    and isinstance(n.func.value, ast.Name)
                    and n.func.value.id == item
                    and n.args
                    and isinstance(n.args[0], ast.Constant)
                    and isinstance(n.args[0].value, str)
                ):
                    out.setdefault((n.args[0].value,), "python-optional")
    return out


def field_paths(grader: Any) -> dict[tuple[str, ...], str]:
    """{item path: how it is read} for a grader and its sub-graders."""
    out: dict[tuple[str, ...], str] = {}
    for sub in (getattr(grader, "graders", None) or {}).values():
        for path, how in field_paths(sub).items():
            out.setdefault(path, how)
    for t in getattr(grader, "templates", []) or []:
        for path in t.item_paths:
            out[path] = "template"
    cfg = getattr(grader, "config", None)
    if cfg is not None and hasattr(cfg, "source") and hasattr(cfg, "function"):
        for path, how in _python_reads(cfg.source, cfg.function).items():
            out.setdefault(path, how)
    return out


def fields_read(grader: Any) -> dict[str, str]:
    """{"a.b": how} of every item field the grader reads."""
    return {".".join(p): how for p, how in field_paths(grader).items()}


def missing_fields(grader: Any, examples: list[Example]) -> list[tuple[Example, str]]:
    """(example, "item.field") for every required field an example lacks."""
    required = [p for p, how in field_paths(grader).items() if how != "python-optional"]
    out = []
    for e in examples:
        for path in required:
            try:
                _lookup(e.data, path, "item")
            except TemplateError:
                out.append((e, ".".join(("item", *path))))
    return out

"""A safe arithmetic formula over named numbers (multi grader's `calculate_output`).

    f = Formula.parse("0.7*tone + 0.3*min(length, 1)", names={"tone", "length"})
    f.evaluate({"tone": 0.5, "length": 2.0})     # -> 0.65

Parsed with `ast` and walked by hand; nothing is ever passed to eval. Allowed: numbers, the given
names, + - * / ** (and ^ as power, as in OpenAI's formulas), unary minus, parentheses, and the
functions min, max, abs, floor, ceil, exp, sqrt, log. Arithmetic is in floats, so huge powers
raise OverflowError instead of running forever.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Iterable

_BINOPS: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[float], float]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_FUNCS: dict[str, tuple[Callable[..., float], int | None]] = {  # name -> (fn, arity or None=1+)
    "min": (min, None),
    "max": (max, None),
    "abs": (abs, 1),
    "floor": (lambda x: float(math.floor(x)), 1),
    "ceil": (lambda x: float(math.ceil(x)), 1),
    "exp": (math.exp, 1),
    "sqrt": (math.sqrt, 1),
    "log": (math.log, 1),
}
FUNCTIONS = tuple(_FUNCS)


class FormulaError(ValueError):
    """The formula is not allowed: `what` is wrong, `hint` says what is allowed."""

    def __init__(self, what: str, hint: str = ""):
        super().__init__(f"{what} ({hint})" if hint else what)
        self.what = what
        self.hint = hint


class Formula:
    def __init__(self, text: str, tree: ast.expr, names: list[str]):
        self.text = text
        self._tree = tree
        self.names = names  # the names the formula uses, in order of first use

    @classmethod
    def parse(cls, text: str, names: Iterable[str]) -> Formula:
        known = set(names)
        try:
            # OpenAI's formulas write powers as ^ (Python's ^ would bind looser than +)
            tree = ast.parse(text.strip().replace("^", "**"), mode="eval").body
        except SyntaxError as e:
            raise FormulaError(f"syntax error at col {e.offset}: {e.msg}") from None
        used: list[str] = []
        _check(tree, known, used)
        return cls(text, tree, used)

    def evaluate(self, values: dict[str, float]) -> float:
        """Raises ZeroDivisionError, OverflowError or ValueError (math domain, a result that is
        not a finite real number, e.g. a negative number to a fractional power) on bad values."""
        try:
            x = _eval(self._tree, values)
        except TypeError as e:  # an operation Python refuses on these values
            raise ValueError(str(e)) from None
        if not math.isfinite(x):
            raise ValueError(f"the result is {x}, not a finite number")
        return x


def _check(node: ast.AST, known: set[str], used: list[str]) -> None:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise FormulaError(f"only numbers are allowed, got {node.value!r}")
    elif isinstance(node, ast.Name):
        if node.id in _FUNCS:
            raise FormulaError(f"'{node.id}' is a function: call it as {node.id}(...)")
        if node.id not in known:
            raise FormulaError(
                f"unknown name '{node.id}'", f"graders: {', '.join(sorted(known)) or 'none'}"
            )
        if node.id not in used:
            used.append(node.id)
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _BINOPS:
            raise FormulaError(
                f"operator {type(node.op).__name__} is not allowed", "use + - * / **"
            )
        _check(node.left, known, used)
        _check(node.right, known, used)
    elif isinstance(node, ast.UnaryOp):
        if type(node.op) not in _UNARY:
            raise FormulaError(f"operator {type(node.op).__name__} is not allowed")
        _check(node.operand, known, used)
    elif isinstance(node, ast.Call):
        fname = node.func.id if isinstance(node.func, ast.Name) else None
        if fname not in _FUNCS:
            raise FormulaError(
                f"function {fname or ast.unparse(node.func)!r} is not allowed",
                f"functions: {', '.join(FUNCTIONS)}",
            )
        if node.keywords:
            raise FormulaError(f"{fname}() takes no keyword arguments")
        arity = _FUNCS[fname][1]
        n = len(node.args)
        if (arity is None and n < 1) or (arity is not None and n != arity):
            want = "at least 1 argument" if arity is None else f"{arity} argument"
            raise FormulaError(f"{fname}() takes {want}, got {n}")
        for a in node.args:
            if isinstance(a, ast.Starred):
                raise FormulaError("*arguments are not allowed")
            _check(a, known, used)
    else:
        raise FormulaError(f"'{ast.unparse(node)}' is not allowed", "numbers, names, + - * / **")


def _eval(node: ast.AST, values: dict[str, float]) -> float:
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return float(values[node.id])
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, values), _eval(node.right, values)
        x = _BINOPS[type(node.op)](left, right)
        if isinstance(x, complex):  # a negative number to a fractional power
            raise ValueError(f"{left:g} ** {right:g} is not a real number")
        return float(x)
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_eval(node.operand, values))
    if isinstance(node, ast.Call):
        fn = _FUNCS[node.func.id][0]  # type: ignore[union-attr]
        return float(fn(*(_eval(a, values) for a in node.args)))
    raise FormulaError(f"'{ast.unparse(node)}' is not allowed")  # unreachable after _check

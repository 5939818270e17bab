"""Tools a policy calls in its chat format, defined in config, and the calls parsed from its text.

A call is written as Qwen / Hermes templates render one::

    <tool_call>{"name": "calculator", "arguments": {"expression": "37 * 41"}}</tool_call>

Definitions (``env.tools``, each one of):
  ``calculator`` / ``python``            the built-in tools below
  ``{function: pkg.module:fn}``         a Python function: its name, docstring and typed parameters make the schema
  ``{function: ..., name: ..., description: ..., parameters: {JSON schema}}``  a JSON schema given as is

``python`` runs the code in the code sandbox (tinkerx/sandbox, the executor of the code reward) and
returns what it printed. A malformed call, an unknown tool, bad arguments or a tool that raises
becomes an error message the model reads as the tool's result -- counted, never a crash.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import operator
import re
import typing
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from tinkerx.errors import ConfigError

CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments object
    fn: Callable[..., Any]

    def schema(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]


def tool_from_function(fn: Callable[..., Any], name: str | None = None, description: str | None = None, parameters: dict[str, Any] | None = None) -> Tool:
    """The schema from the function's signature and docstring, unless given."""
    if parameters is None:
        properties, required = {}, []
        hints = typing.get_type_hints(fn)  # resolves string annotations (``from __future__ import annotations``)
        for p in inspect.signature(fn).parameters.values():
            properties[p.name] = {"type": JSON_TYPES.get(hints[p.name], "string")} if p.name in hints else {}
            if p.default is inspect.Parameter.empty:
                required.append(p.name)
        parameters = {"type": "object", "properties": properties, "required": required}
    doc = inspect.getdoc(fn) or ""
    return Tool(name or fn.__name__, description if description is not None else doc.split("\n\n")[0].strip(), parameters, fn)


def parse_calls(text: str) -> tuple[list[ToolCall], list[str]]:
    """(well-formed calls, one message per malformed one), in the order written."""
    calls, errors = [], []
    for body in CALL.findall(text):
        try:
            value = json.loads(body.strip())
        except ValueError as e:
            errors.append(f"malformed tool call (not JSON: {e}); write <tool_call>{{\"name\": ..., \"arguments\": {{...}}}}</tool_call>")
            continue
        if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not isinstance(value.get("arguments", {}), dict):
            errors.append('malformed tool call: needs {"name": "<tool>", "arguments": {...}}')
            continue
        calls.append(ToolCall(value["name"], value.get("arguments", {})))
    return calls, errors


def run_call(tools: dict[str, Tool], call: ToolCall) -> tuple[str, bool]:
    """(the result the model reads, whether it is an error)."""
    tool = tools.get(call.name)
    if tool is None:
        return f"error: unknown tool {call.name!r}; tools: {', '.join(tools)}", True
    try:
        return str(tool.fn(**call.arguments)), False
    except TypeError as e:
        return f"error: bad arguments for {call.name}: {e}", True
    except Exception as e:  # the tool's failure is the model's information, not the run's end
        return f"error: {type(e).__name__}: {e}", True


# ---- built-in tools --------------------------------------------------------------------------
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv,
        ast.Mod: operator.mod, ast.Pow: operator.pow, ast.USub: operator.neg, ast.UAdd: operator.pos}  # fmt: skip


def calculator(expression: str) -> str:
    """Evaluates an arithmetic expression (+ - * / // % ** and parentheses) and returns the result."""

    def value(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 100:
                raise ValueError("exponent too large")
            return _OPS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](value(node.operand))
        raise ValueError(f"not arithmetic: {ast.unparse(node)}")

    result = value(ast.parse(str(expression), mode="eval").body)
    return str(int(result)) if isinstance(result, float) and result.is_integer() else str(result)


class PythonTool:
    """Runs Python code in the code sandbox and returns what it printed."""

    def __init__(self, executor: Any = None) -> None:
        self._executor = executor

    def __call__(self, code: str) -> str:
        from tinkerx.sandbox import Job, LocalProcessExecutor

        if self._executor is None:  # started on first use: an env that never calls python starts no sandbox
            self._executor = LocalProcessExecutor()
        outcome = self._executor.run(Job(program=str(code), tests=()))
        printed = outcome.stdout_tail.strip()
        if outcome.status in ("passed", "failed"):
            return printed or "(no output: print what you want to see)"
        return f"error ({outcome.status}): {outcome.reason}" + (f"\n{printed}" if printed else "")


def build_tools(definitions: Sequence[Any]) -> dict[str, Tool]:
    """``env.tools`` to tools by name; ConfigError naming what is wrong and what is valid."""
    tools: dict[str, Tool] = {}
    for i, d in enumerate(definitions):
        if d == "calculator":
            tool = tool_from_function(calculator)
        elif d == "python":
            code = {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}
            tool = Tool("python", inspect.getdoc(PythonTool) or "", code, PythonTool())
        elif isinstance(d, Mapping) and "function" in d:
            fn = _import(str(d["function"]), f"env.tools[{i}].function")
            tool = tool_from_function(fn, d.get("name"), d.get("description"), dict(d["parameters"]) if d.get("parameters") is not None else None)
        else:
            raise ConfigError(f"env.tools[{i}] is {d!r}; valid: calculator, python, or {{function: module:function[, name, description, parameters]}}")
        tools[tool.name] = tool
    if not tools:
        raise ConfigError("env.tools is empty; give at least one of calculator, python, {function: module:function}")
    return tools


def _import(path: str, where: str) -> Callable[..., Any]:
    module, _, name = path.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(f"{where}: cannot import {path!r} ({e}); write module.path:function") from None
    if not callable(fn):
        raise ConfigError(f"{where}: {path!r} is not a function")
    return fn

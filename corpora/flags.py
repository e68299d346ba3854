"""Command-line flags derived from a frozen config dataclass: one flag per field, its help text
the comment the field already carries in the code.

    @dataclass(frozen=True)
    class TrainConfig:
        lr: float = 2e-3  # Adam learning rate after warm-up

    add_flags(parser, TrainConfig)   # --lr LR: Adam learning rate after warm-up (default: 0.002)

Flags left off the command line are absent from the parsed namespace (`argparse.SUPPRESS`), so
the caller can tell "not given" from "given the default", and a preset can fill the gap. A
`bool` field becomes `--name` (default False) or `--no-name` (default True).
"""

from __future__ import annotations

import argparse
import inspect
import re
import tokenize
import types
from collections.abc import Callable, Sequence
from dataclasses import MISSING, fields
from typing import Any, NoReturn, Union, get_args, get_origin, get_type_hints


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors (a malformed or unknown flag) are one "error:" line and
    exit status 2, like every other user error; `--help` shows the usage."""

    def error(self, message: str) -> NoReturn:
        flag = re.fullmatch(r"argument (--[\w-]+)(?:/[\w-]+)?: expected one argument", message)
        if flag:  # e.g. --time-budget -5m: argparse reads "-5m" as a flag, not as the value
            message += f" (a value starting with '-' is given as {flag[1]}=VALUE)"
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def checked(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """A flag type from a converter that raises a user error: argparse shows its message."""

    def flag_type(text: str) -> Any:
        try:
            return convert(text)
        except ValueError as error:  # UserError is a ValueError
            raise argparse.ArgumentTypeError(str(error)) from None

    flag_type.__name__ = convert.__name__
    return flag_type


def field_comments(cls: type) -> dict[str, str]:
    """Each field's comment in the class body: the comment ending its line, continued by
    comment-only lines right below it."""
    lines = inspect.getsource(cls).splitlines(keepends=True)
    tokens = tokenize.generate_tokens(iter(lines).__next__)
    comments: dict[str, str] = {}
    current: str | None = None  # the field whose comment may continue on the next line
    previous = None
    for tok in tokens:
        if tok.type in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            continue
        if tok.type == tokenize.NAME and tok.start[1] == 4 and tok.line[4:].split(":")[0].strip() \
                == tok.string and ":" in tok.line:  # fmt: skip
            current = tok.string
        elif tok.type == tokenize.COMMENT and current is not None:
            text = tok.string.lstrip("#").strip()
            comments[current] = f"{comments.get(current, '')} {text}".strip()
        elif tok.type != tokenize.COMMENT and previous is not None and tok.start[0] != previous:
            current = None if tok.start[1] <= 4 else current
        previous = tok.start[0]
    return comments


def _plain_type(hint: Any) -> Any:
    """`int` for `int`, `int | None` and `Optional[int]`; the hint itself otherwise."""
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else hint
    return hint


def shown_default(default: Any) -> str:
    """A default as the help shows it: floats short, nothing as "none", whitespace quoted."""
    if isinstance(default, float):
        return f"{default:g}"
    if default in ("", None):
        return "none"
    if isinstance(default, str) and not default.strip():
        return repr(default)  # a newline would show as nothing
    return str(default)


def add_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    skip: tuple[str, ...] = (),
    rename: dict[str, str] | None = None,
    types_: dict[str, Any] | None = None,
    metavars: dict[str, str] | None = None,
    choices: dict[str, Sequence[str]] | None = None,
    required: tuple[str, ...] = (),
    shown: dict[str, str] | None = None,
) -> list[str]:
    """Add one flag per field of `cls` (but `skip`); returns the namespace keys it adds.

    `rename` maps a field to its flag's key (`name` -> `corpus`), `types_` overrides the type
    that converts a flag's text, `metavars` its placeholder in the help, `choices` the values
    it accepts. The help of a field in `required` says so instead of showing its default; the
    caller checks that it was given (a command that can do without it, `search.run --resume`,
    must not be refused by argparse). `shown` says what the default of a field is where the
    command, not the field, sets it.
    """
    rename, types_, metavars, choices = rename or {}, types_ or {}, metavars or {}, choices or {}
    shown = shown or {}
    comments = field_comments(cls)
    hints = get_type_hints(cls)
    added = []
    for f in fields(cls):
        if f.name in skip:
            continue
        key = rename.get(f.name, f.name)
        kind = types_.get(f.name, _plain_type(hints[f.name]))
        default = f.default if f.default is not MISSING else None
        text = comments.get(f.name, "").replace("%", "%%")  # argparse formats help with %
        if kind is bool:
            flag = f"--no-{key}" if default else f"--{key}"
            parser.add_argument(
                flag.replace("_", "-"),
                dest=key,
                action="store_false" if default else "store_true",
                default=argparse.SUPPRESS,
                help=f"turn off: {text}" if default else text,
            )
        elif kind in (int, float, str) or f.name in types_:
            said = f"default: {shown.get(f.name) or shown_default(default)}"
            if f.name in required:
                said = "required"
            parser.add_argument(
                "--" + key.replace("_", "-"),
                dest=key,
                type=kind,
                default=argparse.SUPPRESS,
                choices=choices.get(f.name),
                metavar=metavars.get(f.name),
                help=f"{text} ({said})" if text else f"({said})",
            )
        else:
            continue  # nested configs and tuples have flags of their own
        added.append(key)
    return added

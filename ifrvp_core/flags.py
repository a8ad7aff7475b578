"""One flag style for `ifrvp` and `python -m data_prep`: helpers both parsers share.

Every flag is registered under its underscore spelling (canonical, `--data_root`) and its
hyphen spelling (`--data-root`), plus any old names kept so that earlier commands still work.
Names that must be one of a list get a message naming the flag, the valid values and the closest
one. Light on purpose (standard library only): `ifrvp --help` imports it.
"""
from __future__ import annotations

import argparse
import difflib
from collections.abc import Callable, Iterable

__all__ = ["add_flag", "choice_error", "choice_type", "closest", "spellings"]


def spellings(name: str) -> list[str]:
    """`--data_root` and `--data-root` for "data_root", "--data-root" or "--data_root" (underscore first)."""
    bare = name.lstrip("-")
    underscore, hyphen = "--" + bare.replace("-", "_"), "--" + bare.replace("_", "-")
    return list(dict.fromkeys([underscore, hyphen]))


def add_flag(parser: argparse.ArgumentParser, name: str, *aliases: str, **kwargs) -> argparse.Action:
    """`parser.add_argument` with both spellings of `name` and of each old alias.

    `dest` defaults to the underscore name, so `--data-root X` and `--root X` (an alias) both set
    `args.data_root`.
    """
    options = [spelling for flag in (name, *aliases) for spelling in spellings(flag)]
    kwargs.setdefault("dest", name.lstrip("-").replace("-", "_"))
    return parser.add_argument(*dict.fromkeys(options), **kwargs)


def closest(value: str, valid: Iterable[str]) -> str | None:
    """The valid name closest to a mistyped `value` (difflib), or None when none is close."""
    matches = difflib.get_close_matches(str(value).lower(), [str(name) for name in valid], n=1)
    return matches[0] if matches else None


def choice_error(flag: str | None, value, valid: Iterable[str]) -> str:
    """"--dataset must be one of a, b; got 'x' (did you mean 'a'?)" (without the flag when None)."""
    valid = list(valid)
    subject = f"{flag} must" if flag else "must"
    message = f"{subject} be one of {', '.join(valid)}; got {value!r}"
    guess = closest(value, valid)
    return message + (f" (did you mean {guess!r}?)" if guess else "")


def choice_type(valid: Iterable[str] | Callable[[], Iterable[str]]) -> Callable[[str], str]:
    """An argparse `type=` accepting a name of `valid` in any case (returns it as listed).

    `valid` may be a function, called only when a value is parsed (never for `--help`). The
    message of a bad value lists the names and the closest one; argparse prefixes the flag.
    """

    def convert(text: str) -> str:
        names = list(valid() if callable(valid) else valid)
        for name in names:
            if name.lower() == text.lower():
                return name
        raise argparse.ArgumentTypeError(choice_error(None, text, names))

    return convert

"""`name=value` arguments, as Ultralytics' `yolo` takes them: `yolossl cycle data=d.yaml epochs=50` is `--data d.yaml
--epochs 50`.

Ultralytics users type this first; read as a folder, `data=d.yaml` would start the demo. Only a command's own option
names are rewritten (`round_epochs=` and `round-epochs=` alike, booleans as their flags); any other `name=value` is
refused before the command runs, naming the closest option (or `--train-arg` for an Ultralytics argument). A
positional argument that exists on disk is left alone, and so is the value of an option (`--train-arg mosaic=0.5`).
"""

from __future__ import annotations

import difflib
import os
import re
from typing import Any

from typer.core import TyperCommand

from yolossl.errors import YolosslError

_KEY_VALUE = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)=(.*)$", re.DOTALL)
_ARGUMENT = re.compile(r"^([{\[])(\w+)[}\]]")
_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


class KeyValueCommand(TyperCommand):
    """A typer command that also takes its options as `name=value`; its flags show no `<bool>` value in --help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if getattr(param, "is_flag", False):  # --tta takes no value: typer would show one
                param.display_type_rich = _no_type

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            option.display_type_rich = _no_type
        return option

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """Arguments as click writes them (SOURCE, [FOLDERS]...), not as typer's `{source}`, a placeholder look."""
        return [_ARGUMENT.sub(_usage_name, piece) for piece in super().collect_usage_pieces(ctx)]

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        from yolossl.cli._ui import print_error

        try:
            args = key_values_as_options(self.params, args)
        except YolosslError as e:
            print_error(str(e))
            ctx.exit(2)
        return super().parse_args(ctx, args)


def key_values_as_options(params: list[Any], args: list[str]) -> list[str]:
    """`args` with every `name=value` of an option of `params` spelled as that option (see the module docstring)."""
    options = {_key(opt): (param, opt) for param in params if _is_option(param) for opt in _long_opts(param)}
    negations = {_key(opt): param for param in params if _is_option(param) for opt in param.secondary_opts}
    takes_value = {opt for param in params if _is_option(param) and not param.is_flag for opt in param.opts}
    rewritten: list[str] = []
    after_option = False  # the previous argument is an option that takes a value: this one is that value
    for arg in args:
        match = None if after_option or arg == "--" or os.path.exists(arg) else _KEY_VALUE.match(arg)
        after_option = arg in takes_value
        if match is None:
            rewritten.append(arg)
            continue
        name, value = match.groups()
        key = _key(name)
        if key in negations:
            rewritten += _flag(negations[key], name, value, negated=True)
        elif key in options:
            param, opt = options[key]
            rewritten += _flag(param, name, value, negated=False) if param.is_flag else [opt, value]
        else:
            raise YolosslError(_unknown(arg, name, options, negations))
    return rewritten


def _flag(param: Any, name: str, value: str, negated: bool) -> list[str]:
    """`tta=true` -> `--tta`, `tta=false` -> `--no-tta` (`quiet=false`: nothing)."""
    if value.lower() not in _TRUE + _FALSE:
        raise YolosslError(f"{name}={value}: expected true or false")
    on = (value.lower() in _TRUE) != negated
    if on:
        return [param.opts[0]]
    return [param.secondary_opts[0]] if param.secondary_opts else []


def _unknown(arg: str, name: str, options: dict[str, Any], negations: dict[str, Any]) -> str:
    known = [*options, *negations]
    close = difflib.get_close_matches(_key(name), known, n=1, cutoff=0.6)
    if close:
        return f"{arg}: no option '{name}'; did you mean {close[0]}=... (--{close[0].replace('_', '-')})?"
    if "train_arg" in options:
        return f"{arg}: not an option of this command; an Ultralytics training argument goes as --train-arg {arg}"
    return f"{arg}: not an option of this command (see --help)"


def _usage_name(match: re.Match[str]) -> str:
    name = match.group(2).upper()
    return name if match.group(1) == "{" else f"[{name}]"


def _no_type(ctx: Any) -> None:
    return None


def _is_option(param: Any) -> bool:
    return type(param).__name__.endswith("Option")


def _long_opts(param: Any) -> list[str]:
    return [opt for opt in param.opts if opt.startswith("--")]


def _key(name: str) -> str:
    """`--round-epochs`, `round-epochs` and `round_epochs` alike."""
    return name.lstrip("-").replace("-", "_").lower()

"""A cheaper ``__init__`` for the frozen, slotted dataclasses made once per command.

A frozen dataclass's generated ``__init__`` sets each field through
``object.__setattr__(self, name, value)``: a generic attribute lookup per
field.  The events, replies and transcript lines are made several times per
command, and that call was about a tenth of the lab server's CPU under
smtp-source.  ``fast_init`` gives the class an ``__init__`` that sets each slot
through its own descriptor instead; the class stays a frozen dataclass (same
fields, defaults, equality, hash, repr, and ``FrozenInstanceError`` on
assignment).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def fast_init(cls: type[T]) -> type[T]:
    """Replace the generated ``__init__`` of frozen, slotted dataclass ``cls``."""
    params = getattr(cls, "__dataclass_params__", None)
    assert params is not None and params.frozen and "__slots__" in cls.__dict__, cls
    assert not hasattr(cls, "__post_init__"), cls
    env: dict[str, Any] = {}
    args: list[str] = []
    body: list[str] = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        assert f.init and not f.kw_only and f.default_factory is dataclasses.MISSING, (cls, f.name)
        if f.default is dataclasses.MISSING:
            args.append(f.name)
        else:
            env[f"_d_{f.name}"] = f.default
            args.append(f"{f.name}=_d_{f.name}")
        env[f"_s_{f.name}"] = cls.__dict__[f.name].__set__  # the slot's own setter
        body.append(f"    _s_{f.name}(self, {f.name})")
    src = f"def __init__(self, {', '.join(args)}):\n" + ("\n".join(body) or "    pass") + "\n"
    exec(src, env)  # noqa: S102 - names and defaults come from the class's own fields
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__init__.__doc__
    init.__annotations__ = dict(cls.__init__.__annotations__)
    cls.__init__ = init  # type: ignore[method-assign]
    return cls

"""`Keys.derived_patterns` is what `omnichannel rebuild` deletes: every key the backbone derives, and nothing else."""

from __future__ import annotations

import inspect
from fnmatch import fnmatchcase

import pytest

from streams.keys import Keys

#: Key builders that name no stored key (a pub/sub channel), or that a rebuild must keep.
_NOT_WIPED = {"cart_updates"}


def _every_key(keys: Keys) -> dict[str, str]:
    """One key from each builder of ``keys``, with placeholder arguments."""
    built = {}
    for name, method in inspect.getmembers(keys, inspect.ismethod):
        if name.startswith("_") or name == "derived_patterns":
            continue
        arity = len(inspect.signature(method).parameters)
        built[name] = method(*[f"arg{n}" for n in range(arity)])
    return built


@pytest.mark.parametrize("namespace", ["", "shop-eu"])
def test_every_derived_key_is_matched_and_a_new_builder_must_be_listed(namespace: str) -> None:
    keys = Keys(namespace)
    patterns = keys.derived_patterns()
    unmatched = {
        name: key
        for name, key in _every_key(keys).items()
        if name not in _NOT_WIPED and not any(fnmatchcase(key, p) for p in patterns)
    }
    assert unmatched == {}, "add their prefix to Keys.derived_patterns (omnichannel rebuild must delete them)"


@pytest.mark.parametrize("namespace", ["", "shop-eu"])
def test_the_patterns_never_reach_another_namespace_or_application(namespace: str) -> None:
    patterns = Keys(namespace).derived_patterns()
    for foreign in (
        "shop-us:cart:{customer:C1}",
        Keys("shop-us").customer("customer:C1"),
        Keys("other").cart("customer:C1"),
        "sessions:abc",
        "cart-service:cart:1",
        "customer:123",  # another application's key, beside an un-namespaced backbone
        "stock:S1:SKU-1",
    ):
        assert not any(fnmatchcase(foreign, p) for p in patterns), foreign

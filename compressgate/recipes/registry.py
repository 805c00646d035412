"""The recipe registry: the names a config may use, and the default list."""

from __future__ import annotations

from compressgate.errors import UserInputError
from compressgate.recipes.schema import Recipe

_REGISTRY: dict[str, Recipe] = {}
# Registered, but run only where a config names them: each adds cold time to every
# gate that runs "all recipes", and some need optional packages.
_OPT_IN: set[str] = set()


def register_recipe(recipe: Recipe, *, replace: bool = False, opt_in: bool = False) -> Recipe:
    """Add a recipe to the registry (``replace=True`` to redefine an existing name).

    ``opt_in=True`` keeps it out of the default recipe list (:func:`default_recipes`):
    it runs only where a config or a command names it.
    """
    if recipe.name in _REGISTRY and not replace:
        raise UserInputError(f"recipe {recipe.name!r} is already registered (pass replace=True)")
    _REGISTRY[recipe.name] = recipe
    if opt_in:
        _OPT_IN.add(recipe.name)
    else:
        _OPT_IN.discard(recipe.name)
    return recipe


def get_recipe(name: str) -> Recipe:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UserInputError(
            f"unknown recipe {name!r} (expected one of {', '.join(_REGISTRY)})"
        ) from None


def registered_recipes() -> list[Recipe]:
    """Every recipe a config may name, opt-in ones included."""
    return list(_REGISTRY.values())


def default_recipes() -> list[Recipe]:
    """The recipes a model runs when neither it nor the project lists its own."""
    return [r for r in _REGISTRY.values() if r.name not in _OPT_IN]

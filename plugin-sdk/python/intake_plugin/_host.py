"""The engine's imports, as componentize-py binds them, loaded when the
component is built (a plugin has no file system at run time, so every
module it uses must be imported by then). Not public API."""

from componentize_py_types import Err  # noqa: F401
from wit_world.imports import directory, types  # noqa: F401

"""Moved to `spvhub_devtools.testtokens` (dev-only tooling, not part of the runtime library).

This name stays importable until the last importers are switched; it is the same module object, not a copy."""
import sys

from spvhub_devtools import testtokens as _impl

sys.modules[__name__] = _impl

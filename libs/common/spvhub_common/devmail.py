"""Moved to `spvhub_devtools.devmail` (dev-only tooling, not part of the runtime library).

This name stays importable until the last importers are switched; it is the same module object, not a copy."""
import sys

from spvhub_devtools import devmail as _impl

if __name__ == "__main__":  # `python -m spvhub_common.devmail` still works
    raise SystemExit(_impl.main())

sys.modules[__name__] = _impl

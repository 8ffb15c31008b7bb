"""The test suite (a package, so that `tests` is this folder and not another
distribution's top-level `tests` package, such as the one Ciw installs)."""

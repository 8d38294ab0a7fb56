"""Is the ``fastcore`` package that Python imported ours?

fastai's ``fastcore`` (the PyPI distribution of that name) has the same
import name as ``fastcore-server``. pip installs a distribution's files
without looking at who else owns them, and the two packages share one file
name, ``fastcore/__init__.py``. So, in one environment:

1. theirs installed over ours replaces our ``__init__.py``: our modules are
   still there and still run, under their version number;
2. then uninstalling theirs deletes that ``__init__.py``: what is left
   imports as a namespace package, whose ``fastcore.__version__`` is gone;
3. ours installed over theirs leaves us whole and their package broken.

(1) and (2) are seen from the marker our ``__init__.py`` carries; (3) from
their distribution's metadata next to ours. The ``fastcore`` command checks
this first, before anything trusts the package, and says it in one line.
"""
import importlib.metadata
import os
from typing import Optional

__all__ = ["DISTRIBUTION", "foreign_package", "other_distribution"]

DISTRIBUTION = "fastcore-server"
OTHER = "fastcore"  # fastai's distribution
FIX = ("pip uninstall -y fastcore && pip install --force-reinstall --no-deps fastcore-server "
       "(fastai's fastcore needs a virtual environment of its own)")


def foreign_package(package) -> Optional[str]:
    """What is wrong with the imported package `package`, in one line, or
    None when it is ours."""
    if getattr(package, "__distribution__", None) == DISTRIBUTION:
        return None
    init = getattr(package, "__file__", None)
    if init is None:  # a namespace package: the directory lost its __init__.py
        where = ", ".join(getattr(package, "__path__", ())) or "?"
        return (f"the fastcore package in {where} has no __init__.py: another package named fastcore "
                f"(fastai's) was installed over fastcore-server's and uninstalled, taking that file with it; "
                f"fix: {FIX}")
    version = getattr(package, "__version__", "unknown")
    return (f"the fastcore package in {os.path.dirname(init)} is not fastcore-server's: its __init__.py is "
            f"another package's (version {version}; fastai's fastcore has the same import name and was "
            f"installed over fastcore-server's files); fix: {FIX}")


def other_distribution() -> Optional[str]:
    """One line when fastai's fastcore is installed next to ours (our package
    is whole, theirs is not), or None."""
    try:
        version = importlib.metadata.version(OTHER)
    except importlib.metadata.PackageNotFoundError:
        return None
    return (f"fastai's fastcore {version} is installed in this environment too: it has the same import name "
            f"as fastcore-server and the two overwrite each other's files; fix: {FIX}")

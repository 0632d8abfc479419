"""Which modules are the user's own code: neither the standard library nor an installed
package, but ``__main__`` (a script, a notebook) and modules imported from the user's
folders.  The user edits them between two searches (a notebook's autoreload) or
between two runs of a checkpointed search, so what they run is looked at rather than
trusted by name: a checkpoint's keys hash their code (``_plan``), and warm worker
processes that imported a file edited since are retired (``_engines.processes``).
"""

import os
import sys
import sysconfig

_MAIN = ("__main__", "__mp_main__")
# Where the standard library and installed packages live (a virtual environment's
# folders may be reached through a symbolic link: both spellings).
_LIBRARIES = tuple({os.path.join(spelling, "")
                    for name in ("stdlib", "platstdlib", "purelib", "platlib")
                    for spelling in (sysconfig.get_paths()[name],
                                     os.path.realpath(sysconfig.get_paths()[name]))})


def is_own(module_name):
    """Whether the module of this name, imported here, is the user's own code."""
    if module_name in _MAIN:
        return True
    path = file_of(sys.modules.get(module_name))
    return path is not None and not path.startswith(_LIBRARIES)


def own_files():
    """The files of the user's own modules imported here (``__main__`` aside: its
    classes and functions travel by value)."""
    for name, module in list(sys.modules.items()):
        path = file_of(module)
        if path is not None and name not in _MAIN and not path.startswith(_LIBRARIES):
            yield path


def file_of(module):
    """The file a module was imported from, or None."""
    try:  # past a module's own attribute hooks: a lazily loaded module stays unloaded
        path = object.__getattribute__(module, "__dict__").get("__file__")
    except (AttributeError, TypeError):
        return None
    return path if isinstance(path, str) else None

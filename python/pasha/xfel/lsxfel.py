"""Lists what a European XFEL run directory or file holds, as pasha's C++ lsxfel does:

    python3 -m pasha.xfel.lsxfel RUN_DIRECTORY|FILE.h5 [--keys] [--check]

--keys lists each source's keys with their entry shapes and types; --check reads every train of every
numeric key on pasha's default context (a progress report on stderr) and exits 1 if any cannot be read.
"""

import sys
from typing import List, Optional

from .. import _pasha


def main(argv: Optional[List[str]] = None) -> int:
    """Runs lsxfel with `argv` (default: the command line's arguments); returns its exit status."""
    sys.stdout.flush()
    sys.stderr.flush()
    return _pasha.lsxfel(list(sys.argv[1:] if argv is None else argv))


if __name__ == '__main__':
    sys.exit(main())

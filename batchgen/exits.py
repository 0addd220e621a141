"""Exit codes, defined once (README, "Exit codes")."""

EXIT_OK = 0
EXIT_ITEMS_FAILED = 1  # some items failed, could not be written, or were left undone
EXIT_USAGE = 2  # bad manifest or usage: nothing was sent
EXIT_FATAL_API = 3  # key, credits, or every model refused
EXIT_LOCKED = 75  # another run holds OUT (EX_TEMPFAIL)
EXIT_INTERRUPTED = 130  # SIGINT
EXIT_TERMINATED = 143  # SIGTERM
# A run that ended on an unexpected error: its summary says so, with the error.
EXIT_CRASHED = EXIT_ITEMS_FAILED

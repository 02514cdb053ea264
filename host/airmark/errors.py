"""The package's exceptions. The CLI turns each into one line on stderr and an exit code."""


class AirmarkError(Exception):
    """Base class: a problem the user can fix (bad input, missing tool, bad key...)."""

    exit_code = 2


class KeyFileError(AirmarkError):
    """A key file is unreadable or invalid; `problems` has one line per problem."""

    def __init__(self, path, problems):
        self.path = path
        self.problems = list(problems)
        AirmarkError.__init__(self, "%s: %s" % (path, "; ".join(self.problems)))


class AudioError(AirmarkError):
    """Audio could not be read, decoded or written."""


class ToolMissing(AirmarkError):
    """An external program (ffmpeg, mpy-cross, micropython...) is not installed."""

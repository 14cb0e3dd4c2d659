"""Where log lines go: the terminal at the chosen level, and a log file kept whole.

A run shows its progress and summary, not Dask's lines about its scheduler, nannies
and workers (INFO). `--log-file PATH` keeps every line at INFO in a file anyway,
from this process and from the worker processes Dask starts, while the terminal
stays at its level. Dask configures its logging when `distributed` is first
imported, in each process, from DASK_LOGGING__* variables that the worker
processes inherit: this module writes those variables (Dask's dictConfig form when
there is a file), and never overrides the user's own.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from loader.core.errors import ConfigError

LINE_FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"


def dask_logging(level: str, log_file: str | None) -> dict[str, str]:
    """The DASK_LOGGING__* variables for the terminal at `level` (and the file)."""
    if not log_file:
        return {"DASK_LOGGING__DISTRIBUTED": level.lower()}
    prefix = "DASK_LOGGING__"
    return {
        prefix + "VERSION": "1",
        prefix + "DISABLE_EXISTING_LOGGERS": "False",
        prefix + "FORMATTERS__PLAIN__FORMAT": LINE_FORMAT,
        prefix + "HANDLERS__CONSOLE__CLASS": "logging.StreamHandler",
        prefix + "HANDLERS__CONSOLE__LEVEL": level.upper(),
        prefix + "HANDLERS__FILE__CLASS": "logging.FileHandler",
        prefix + "HANDLERS__FILE__FILENAME": log_file,
        prefix + "HANDLERS__FILE__LEVEL": "INFO",
        prefix + "HANDLERS__FILE__FORMATTER": "plain",
        prefix + "LOGGERS__DISTRIBUTED__LEVEL": "INFO",
        prefix + "LOGGERS__DISTRIBUTED__HANDLERS": "['console', 'file']",
        prefix + "LOGGERS__DISTRIBUTED__PROPAGATE": "False",
    }


def configure(level: str, log_file: str | None, redacting: logging.Filter | None = None) -> None:
    """Set Dask's logging for this process and the workers it will start, unless the
    environment already configures it; with a file, the loader's lines go there too,
    through `redacting` (credentials.RedactingFilter)."""
    if log_file:
        path = Path(log_file).resolve()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.open("a", encoding="utf-8").close()
        except OSError as exc:
            raise ConfigError(f"cannot write the log file {log_file}: {exc.strerror}") from None
        log_file = str(path)
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter(LINE_FORMAT))
        if redacting is not None:
            handler.addFilter(redacting)
        logging.getLogger("loader").addHandler(handler)
    if not any(name.startswith("DASK_LOGGING") for name in os.environ):
        os.environ.update(dask_logging(level, log_file))
    logging.getLogger("distributed").setLevel("INFO" if log_file else level.upper())

"""The project's exception hierarchy (stdlib only, shared by ``engine`` and ``watcher``)."""

from __future__ import annotations


class UnetMattingError(Exception):
    """Base class of every error this project raises on purpose."""


class ModelError(UnetMattingError):
    """Weights cannot be loaded or do not fit the architecture."""


class ImageError(UnetMattingError):
    """An input file is not an image this service can process."""


class ImageIncomplete(ImageError):
    """An input cannot be decoded yet: it may still be uploading or be resumed later."""


class ImageTooLarge(ImageError):
    """An image has more pixels than the configured limit."""


class NoProduct(ImageError):
    """The matte holds nothing a shop could publish: no pixel reaches the body's opacity."""


class JobError(UnetMattingError):
    """A job failed for a reason other than its input image."""


class GpuMemoryError(JobError):
    """The network could not run within the GPU memory this process may use."""

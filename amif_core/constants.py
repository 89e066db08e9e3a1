"""Constants shared by the core and its front ends; importing this module imports nothing else."""

VERSION = "0.2.0"
DEFAULT_IDENTIFIER = "AMIF \u00a9"
PAD_MULTIPLE = 8  # slices are padded (edge replication) to multiples of this before the network
DEFAULT_BATCH_SIZE = 4  # slices per batch of the array API and of the command line on the CPU


def padded(size: int) -> int:
    """``size`` rounded up to a multiple of :data:`PAD_MULTIPLE`."""
    return -(-size // PAD_MULTIPLE) * PAD_MULTIPLE

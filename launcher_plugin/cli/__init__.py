"""``torchx`` subcommands this package lays over TorchX's own (``run``, ``tracker``)."""

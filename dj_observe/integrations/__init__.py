"""Adapters that attach dj-observe to other executors (see :mod:`.data_juicer`)."""

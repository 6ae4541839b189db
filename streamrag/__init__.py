"""streamrag: retrieval-augmented generation as a stream-processing dataflow."""

__version__ = "0.1.0"
